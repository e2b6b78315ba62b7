"""Errors and warnings where nnsight code expects them.

- The error types nnsight code catches: ``.output`` outside a trace is also a ``ValueError``, a
  missing tokenizer also an ``AttributeError``, an invoke inside an invoke also a ``ValueError``
  (see test_promptless.py); every one is still a ``LensError``.
- Editing in place a value the forward already used changes only the user's copy (nnsight
  allows it): a ``LensWarning`` at the user's line, not an error. Assigning ``.output`` of a
  module the forward already passed still raises ``OutOfOrderError``.

Ground truth: plain forward hooks and direct Hugging Face calls.
"""

from __future__ import annotations

import pytest
import torch

from lenslab import (
    InputError,
    LensError,
    LensWarning,
    MissingTokenizerError,
    NotTracingError,
    OutOfOrderError,
    TraceStateError,
)

from ..conftest import assert_clean, hooked, layers_of, make_tiny

PROMPTS = ["The Eiffel Tower is located in the city of", "Hello there"]


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def tiny_lm(request):
    return request.getfixturevalue(request.param)


def envoy_layers(lm):
    return lm.transformer.h if hasattr(lm._model, "transformer") else lm.model.layers


def logits_alone(lm, prompt):
    with torch.no_grad():
        return lm._model(**lm.tokenizer(prompt, return_tensors="pt")).logits


def lines_with(marker: str) -> int:
    with open(__file__) as file:
        found = [i for i, line in enumerate(file, 1) if line.rstrip().endswith("# " + marker)]
    assert len(found) == 1
    return found[0]


# -- error types ---------------------------------------------------------------------------------


def test_output_outside_a_trace_is_also_a_value_error(tiny_lm):
    layer = envoy_layers(tiny_lm)[0]
    for read in (lambda: layer.output, lambda: layer.input, lambda: tiny_lm.output):
        with pytest.raises(ValueError, match=r"only available inside") as caught:
            read()
        assert isinstance(caught.value, (NotTracingError, TraceStateError, LensError))
    try:  # what nnsight code writes
        layer.output  # noqa: B018
    except ValueError as error:
        assert isinstance(error, NotTracingError)


def test_a_missing_tokenizer_is_also_an_attribute_error(tokenizer):
    bare = make_tiny("gpt2", None)  # wrapped without a tokenizer
    assert bare.tokenizer is None
    with pytest.raises(AttributeError, match=r"LanguageModel\(hf_model, tokenizer=tok\)") as caught:
        with bare.trace("Hello"):
            bare.transformer.h[0].output.save()
    assert isinstance(caught.value, (MissingTokenizerError, InputError, LensError))
    assert_clean(bare._model)
    ids = torch.tensor([[1, 2, 3]])
    with bare.trace(ids):  # token ids need no tokenizer
        out = bare.output.logits.save()
    with torch.no_grad():
        assert torch.equal(out, bare._model(ids).logits)


# -- in-place edits of values the forward already used ---------------------------------------------


@pytest.mark.parametrize("batched", [False, True], ids=["single", "invokes"])
def test_an_in_place_edit_of_a_used_value_warns_and_changes_only_the_copy(tiny_lm, batched):
    layers = envoy_layers(tiny_lm)
    with pytest.warns(LensWarning, match=r"edited in place.*cannot reach the model") as caught:
        if batched:
            with tiny_lm.trace() as tracer:
                with tracer.invoke(PROMPTS[0]):
                    hidden = layers[0].output
                    layers[1].output.save()
                    hidden[:] = 1
                    first = tiny_lm.output.logits.save()  # noticed in an invoke
                with tracer.invoke(PROMPTS[1]):
                    second = tiny_lm.output.logits.save()
        else:
            with tiny_lm.trace(PROMPTS[0]):
                hidden = layers[0].output
                layers[1].output.save()
                hidden[:] = 1
                first = tiny_lm.output.logits.save()  # noticed inline
    marker = "noticed in an invoke" if batched else "noticed inline"
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, lines_with(marker))]
    assert (hidden == 1).all()  # the user's copy changed
    n = logits_alone(tiny_lm, PROMPTS[0]).shape[1]
    torch.testing.assert_close(
        first[:, -n:], logits_alone(tiny_lm, PROMPTS[0]), rtol=1e-4, atol=1e-5
    )
    if batched:
        m = logits_alone(tiny_lm, PROMPTS[1]).shape[1]
        expected = logits_alone(tiny_lm, PROMPTS[1])
        torch.testing.assert_close(second[:, -m:], expected, rtol=1e-4, atol=1e-5)
    assert_clean(tiny_lm._model)


def test_an_in_place_edit_of_a_used_value_in_generation_steps(tiny_lm):
    layers = envoy_layers(tiny_lm)
    with (
        pytest.warns(LensWarning, match=r"cannot reach the model"),
        tiny_lm.generate(PROMPTS[0], max_new_tokens=3, do_sample=False) as tracer,
    ):
        for _ in tracer.iter[:2]:
            hidden = layers[0].output
            layers[1].output.save()
            hidden[:] = 0
    inputs = tiny_lm.tokenizer(PROMPTS[0], return_tensors="pt")
    expected = tiny_lm._model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert torch.equal(tracer.result, expected)  # the model never saw the edits
    assert_clean(tiny_lm._model)


def test_an_in_place_edit_of_a_used_value_in_model_edit(tiny_lm):
    layers = envoy_layers(tiny_lm)
    with tiny_lm.edit() as edited:
        hidden = layers[0].output
        layers[1].output.save()
        hidden[:] = 0
    with pytest.warns(LensWarning, match=r"cannot reach the model"), edited.trace(PROMPTS[0]):
        logits = tiny_lm.output.logits.save()
    torch.testing.assert_close(logits, logits_alone(tiny_lm, PROMPTS[0]))
    assert_clean(tiny_lm._model)


def test_an_in_place_edit_before_the_forward_moves_on_reaches_the_model(tiny_lm):
    """The rule is about timing: the same edit made while the value is current is no mistake."""
    layers = envoy_layers(tiny_lm)
    with tiny_lm.trace(PROMPTS[0]):
        hidden = layers[0].output
        hidden[:] = 0
        logits = tiny_lm.output.logits.save()
    module = layers_of(tiny_lm._model)[0]
    with hooked({"0": module}, {"0": torch.zeros_like}), torch.no_grad():
        expected = tiny_lm._model(**tiny_lm.tokenizer(PROMPTS[0], return_tensors="pt")).logits
    torch.testing.assert_close(logits, expected)


def test_assigning_the_output_of_a_passed_module_still_raises(tiny_lm):
    layers = envoy_layers(tiny_lm)
    with pytest.raises(OutOfOrderError, match=r"cannot set .*\[0\]\.output"):
        with tiny_lm.trace(PROMPTS[0]):
            later = layers[1].output
            layers[0].output = later
    assert_clean(tiny_lm._model)
