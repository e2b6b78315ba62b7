"""1,000 traces of every kind, in a shuffled order, from changing C call depths, without a crash.

The engine's greenlets are reused across traces and resumed from wherever the block happens
to be, and native code inside them (torch's error path, CUDA queries) walks the C stack (see
engine/stacks.py). This mixes invokes, edits, generation step loops, gradients, errors in
bodies and errors in the forward, each started under a random number of extra C frames, checks
every value against ground truth computed once with plain torch hooks, and checks that the
model is clean at the end. CI runs it on the CPU and on the CUDA build of torch.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from lenslab import NNsight

from ..conftest import assert_clean, hooked, layers_of

TRACES = 1000
PROMPTS = ["The cat sat on the", "One two three four five six"]
TOKEN = 42  # the logit the gradient case differentiates


def under_c_frames(depth: int, f):
    """``f()`` with ``depth`` extra C frames below it (map() calls back into Python from C)."""
    return f() if depth == 0 else next(map(lambda _: under_c_frames(depth - 1, f), [None]))


class Failing(nn.Module):
    """Fails inside torch (a c10::Error) whenever its input has three rows."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if x.shape[0] == 3:
            torch.ones(2) @ torch.ones(3)
        return self.b(h)


class Truth:
    """Ground truth for each case, from plain hooks on the HF module (computed once)."""

    def __init__(self, model) -> None:
        hf, tok = model._model, model.tokenizer
        layers = layers_of(hf)
        ids = tok(PROMPTS[0], return_tensors="pt")
        with torch.no_grad(), hooked({"l1": layers[1]}) as seen:
            self.logits = hf(**ids).logits
        self.layer1 = seen["l1"]

        def zero_last(output):
            output = output.clone()
            output[:, -1] = 0
            return output

        with torch.no_grad(), hooked({"l0": layers[0]}, edit={"l0": zero_last}):
            self.edited = hf(**ids).logits

        other = tok(PROMPTS[1], return_tensors="pt")
        with torch.no_grad(), hooked({"l1": layers[1]}) as seen:
            hf(**other)
        last = seen["l1"][:, -1].clone()

        def patch(output):
            output = output.clone()
            output[:, -1] = last
            return output

        with torch.no_grad(), hooked({"l1": layers[1]}, edit={"l1": patch}):
            self.patched = hf(**ids).logits[0, -1]

        with torch.no_grad(), hooked({"l1": layers[1]}, edit={"l1": lambda o: o * 0.5}):
            self.generated = hf.generate(**ids, max_new_tokens=3, do_sample=False)

        with hooked({"l1": layers[1]}) as seen:
            loss = hf(**ids).logits[0, -1, TOKEN]
        (self.grad,) = torch.autograd.grad(loss, [seen["l1"]])


def read(model, truth):
    with model.trace(PROMPTS[0]):
        h = model.layers[1].output.save()
    assert torch.equal(h, truth.layer1)


def edit(model, truth):
    with model.trace(PROMPTS[0]):
        model.layers[0].output[:, -1] = 0
        logits = model.output.logits.save()
    assert torch.allclose(logits, truth.edited, atol=1e-5)


def invokes(model, truth):
    with model.trace() as tracer:
        with tracer.invoke(PROMPTS[1]):
            other = model.layers[1].output[:, -1].save()
        with tracer.invoke(PROMPTS[0]):
            model.layers[1].output[:, -1] = other
            patched = model.output.logits[0, -1].save()
    assert torch.allclose(patched, truth.patched, atol=1e-4)


def generation(model, truth):
    with model.generate(PROMPTS[0], max_new_tokens=3, do_sample=False) as tracer:
        for _step in tracer.all():
            model.layers[1].output[:] *= 0.5
        ids = model.generator.output.save()
    assert torch.equal(ids, truth.generated)


def gradient(model, truth):
    with model.trace(PROMPTS[0]):
        h = model.layers[1].output
        loss = model.output.logits[0, -1, TOKEN]
        with loss.backward():
            grad = h.grad.save()
    assert torch.allclose(grad, truth.grad, atol=1e-6)


def error_in_body(model, truth):
    with pytest.raises(RuntimeError), model.trace(PROMPTS[0]):
        h = model.layers[0].output
        h @ torch.ones(3)  # a c10::Error raised on the caller's side


def error_in_invoke(model, truth):
    with pytest.raises(RuntimeError), model.trace() as tracer:
        with tracer.invoke(PROMPTS[0]):
            model.layers[0].output @ torch.ones(3)
        with tracer.invoke(PROMPTS[1]):
            model.layers[1].output[:] = 0


def error_in_step(model, truth):
    with pytest.raises(RuntimeError):
        with model.generate(PROMPTS[0], max_new_tokens=3, do_sample=False) as tracer:
            for step in tracer.all():
                if step == 1:
                    model.layers[1].output @ torch.ones(3)


CASES = [read, edit, invokes, generation, gradient, error_in_body, error_in_invoke, error_in_step]


def error_in_forward(failing: NNsight) -> None:
    with pytest.raises(RuntimeError), failing.trace(torch.ones(3, 4)):
        h = failing.a.output
        failing.b.output[:] = h.sum()


def test_a_thousand_mixed_traces(tiny_llama, tiny_gpt2):
    models = [(tiny_llama, Truth(tiny_llama)), (tiny_gpt2, Truth(tiny_gpt2))]
    failing_net = Failing()
    failing = NNsight(failing_net)
    rng = random.Random(0)
    ran = {case.__name__: 0 for case in [*CASES, error_in_forward]}
    for _ in range(TRACES):
        depth = rng.randrange(8)
        if rng.random() < 1 / 9:
            under_c_frames(depth, lambda: error_in_forward(failing))
            ran["error_in_forward"] += 1
            continue
        model, truth = rng.choice(models)
        case = rng.choice(CASES)
        under_c_frames(depth, lambda: case(model, truth))  # noqa: B023 (called at once)
        ran[case.__name__] += 1
    assert sum(ran.values()) == TRACES
    assert min(ran.values()) > 50, ran
    for model, truth in models:
        assert_clean(model._model)
        read(model, truth)  # still exact afterwards
        edit(model, truth)
    assert_clean(failing_net)
