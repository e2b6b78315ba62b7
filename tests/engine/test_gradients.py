"""Gradients inside traces, against ``torch.autograd.grad`` on plain forward-hook captures."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lenslab import InputError

from ..conftest import assert_clean, layers_of

PROMPT = "The quick brown fox"


def reference_grads(model, layers, scale=1.0):
    """d(loss)/d(layer output) for ``layers``, with loss = -logits[0, -1, token]."""
    captured = {}
    blocks = layers_of(model._model)
    handles = [
        blocks[i].register_forward_hook(lambda m, a, o, i=i: captured.__setitem__(i, o))
        for i in layers
    ]
    try:
        logits = model._model(**model.tokenizer(PROMPT, return_tensors="pt")).logits
    finally:
        for handle in handles:
            handle.remove()
    loss = -logits[0, -1, target(model)] * scale
    return torch.autograd.grad(loss, [captured[i] for i in layers])


def target(model):
    return model.tokenizer.encode(" jumps")[0]


def layer(model, index):
    base = model.transformer if hasattr(model._model, "transformer") else model.model
    return (base.h if hasattr(model._model, "transformer") else base.layers)[index]


@pytest.fixture(params=["smollm2", "tiny_gpt2", "tiny_llama"])
def any_model(request):
    return request.getfixturevalue(request.param)


def test_seed_form_retain_grad_then_backward(any_model):
    with any_model.trace(PROMPT):
        hidden = layer(any_model, 1).output.save()
        hidden.retain_grad()
        logits = any_model.output.logits
        loss = -logits[0, -1, target(any_model)]
        loss.backward()
    (expected,) = reference_grads(any_model, [1])
    torch.testing.assert_close(hidden.grad, expected)
    any_model._model.zero_grad(set_to_none=True)
    assert_clean(any_model._model)


def test_backward_block_reads_live_gradients_in_any_order(any_model):
    with any_model.trace(PROMPT):
        early = layer(any_model, 0).output
        late = layer(any_model, 2).output
        loss = -any_model.output.logits[0, -1, target(any_model)]
        with loss.backward():
            early_grad = early.grad.save()  # flows after the late one; still fine
            late_grad = late.grad.save()
    expected_early, expected_late = reference_grads(any_model, [0, 2])
    torch.testing.assert_close(early_grad, expected_early)
    torch.testing.assert_close(late_grad, expected_late)
    any_model._model.zero_grad(set_to_none=True)


def test_gradients_held_in_a_list_or_a_loop_read_in_forward_order(tiny_gpt2):
    """Tensors the block reaches through a list (``hs[0].grad``) or a loop over one are
    watched from the start too, so forward order works, as for plain names."""
    expected = reference_grads(tiny_gpt2, [0, 1])
    with tiny_gpt2.trace(PROMPT):
        hs = [layer(tiny_gpt2, 0).output, layer(tiny_gpt2, 1).output]
        loss = -tiny_gpt2.output.logits[0, -1, target(tiny_gpt2)]
        with loss.backward():
            first = hs[0].grad.save()
            second = hs[1].grad.save()
    with tiny_gpt2.trace(PROMPT):
        hs = {"a": layer(tiny_gpt2, 0).output, "b": layer(tiny_gpt2, 1).output}
        loss = -tiny_gpt2.output.logits[0, -1, target(tiny_gpt2)]
        looped = []
        with loss.backward():
            for name in hs:
                looped.append(hs[name].grad.save())
    for got in ((first, second), looped):
        for value, want in zip(got, expected):
            torch.testing.assert_close(value, want)
    assert_clean(tiny_gpt2._model)


def test_editing_a_gradient_changes_everything_upstream(smollm2):
    with smollm2.trace(PROMPT):
        early = smollm2.model.layers[3].output
        late = smollm2.model.layers[20].output
        loss = -smollm2.output.logits[0, -1, target(smollm2)]
        with loss.backward():
            late.grad = late.grad * 3  # replacement
            early_grad = early.grad.save()
    # Everything reaching layer 3 from the loss passes through layer 20's output, so the
    # gradient there is three times the plain one.
    (expected,) = reference_grads(smollm2, [3], scale=3.0)
    torch.testing.assert_close(early_grad, expected)
    with smollm2.trace(PROMPT):
        early = smollm2.model.layers[3].output
        late = smollm2.model.layers[20].output
        loss = -smollm2.output.logits[0, -1, target(smollm2)]
        with loss.backward():
            late.grad[:] = 0  # in place
            zeroed = early.grad.save()
    assert torch.count_nonzero(zeroed) == 0
    smollm2._model.zero_grad(set_to_none=True)


def test_backward_of_a_non_scalar_is_a_clear_error(tiny_llama):
    with pytest.raises(InputError, match=r"needs a scalar"):
        with tiny_llama.trace(PROMPT):
            tiny_llama.output.logits.backward()
    assert_clean(tiny_llama._model)
    with tiny_llama.trace(PROMPT):
        hidden = tiny_llama.model.layers[1].output.save()
    assert hidden.shape[-1] == tiny_llama.config.hidden_size


def test_torch_is_not_patched_outside_traces():
    """Outside traces ``Tensor.backward`` reads as torch's own, and a plain call is torch's
    (only a with-item form differs: nnsight's standalone backward block)."""
    code = """
import torch
before = (torch.Tensor.backward, torch.Tensor.__dict__.get("grad"))
import lenslab, torch.nn as nn
assert (torch.Tensor.backward, torch.Tensor.__dict__.get("grad")) == before
net = lenslab.NNsight(nn.Linear(3, 1))
with net.trace(torch.ones(1, 3)):
    during = torch.Tensor.backward
    out = net.output.save()
after = (torch.Tensor.backward, torch.Tensor.__dict__.get("grad"))
assert before == after and during is not before[0]
x = torch.randn(2, 3, requires_grad=True)
(x * x).sum().backward()                       # a plain call outside a trace: torch's own
assert torch.equal(x.grad, 2 * x.detach())
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
