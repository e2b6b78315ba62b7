"""Several invokes: one batched forward, each invoke its own rows, values crossing invokes."""

from __future__ import annotations

import pytest
import torch

from lenslab import InputError

from ..conftest import hooked, layers_of

PROMPTS = ["The Eiffel Tower is located in the city of", "Hello", "One two three four five"]


def layer_envoys(model):
    base = model.transformer if hasattr(model._model, "transformer") else model.model
    return base.h if hasattr(model._model, "transformer") else base.layers


def alone(model, prompt, layer):
    """(layer output, logits) of ``prompt`` run by itself, through plain hooks."""
    module = layers_of(model._model)[layer]
    with hooked({"layer": module}) as captured, torch.no_grad():
        logits = model._model(**model.tokenizer(prompt, return_tensors="pt")).logits
    return captured["layer"], logits


def count_forwards(model):
    calls = []
    handle = model._model.register_forward_pre_hook(lambda m, a: calls.append(1))
    return calls, handle


def test_invokes_share_one_forward_and_equal_solo_runs(lm):
    layers = layer_envoys(lm)
    calls, handle = count_forwards(lm)
    try:
        with lm.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                first = layers[1].output.save()
                first_logits = lm.output.logits.save()
            with tracer.invoke(PROMPTS[1]):
                second = layers[1].output.save()
                second_logits = lm.output.logits.save()
            ids = lm.tokenizer(PROMPTS[2], return_tensors="pt").input_ids
            with tracer.invoke(ids):
                third = layers[1].output.save()
    finally:
        handle.remove()
    assert len(calls) == 1
    for prompt, hidden, logits in (
        (PROMPTS[0], first, first_logits),
        (PROMPTS[1], second, second_logits),
        (PROMPTS[2], third, None),
    ):
        expected_hidden, expected_logits = alone(lm, prompt, 1)
        n = expected_hidden.shape[1]
        assert hidden.shape[0] == 1  # batch dimension kept
        torch.testing.assert_close(hidden[:, -n:], expected_hidden, rtol=1e-4, atol=1e-5)
        if logits is not None:
            torch.testing.assert_close(logits[:, -n:], expected_logits, rtol=1e-4, atol=1e-4)


def test_cross_prompt_patching_equals_two_plain_passes(smollm2):
    layer = 8
    with smollm2.trace() as tracer:
        with tracer.invoke("The cat sat on the"):
            cat = smollm2.model.layers[layer].output.save()
        with tracer.invoke("The dog ran through the"):
            smollm2.model.layers[layer].output[:, -1] = cat[:, -1]
            patched = smollm2.output.logits.save()
    source, _ = alone(smollm2, "The cat sat on the", layer)
    module = smollm2._model.model.layers[layer]

    def replace_last(out):
        out = out.clone()
        out[:, -1] = source[:, -1]
        return out

    with hooked({"layer": module}, edit={"layer": replace_last}), torch.no_grad():
        inputs = smollm2.tokenizer("The dog ran through the", return_tensors="pt")
        expected = smollm2._model(**inputs).logits
    n = expected.shape[1]
    torch.testing.assert_close(patched[:, -n:], expected, rtol=1e-4, atol=1e-4)


def test_edits_stay_in_their_own_rows(smollm2):
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPTS[0]):
            smollm2.model.layers[2].output[:] = 0
            zeroed = smollm2.output.logits.save()
        with tracer.invoke(PROMPTS[0]):
            untouched = smollm2.output.logits.save()
    _, expected = alone(smollm2, PROMPTS[0], 2)
    torch.testing.assert_close(untouched, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(zeroed, expected)


def test_a_later_invoke_reads_what_an_earlier_one_edited(smollm2):
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPTS[0]):
            smollm2.model.layers[3].output[:, -1] = 0
            edited = smollm2.model.layers[3].output[:, -1].clone().save()
        with tracer.invoke(PROMPTS[0]):
            seen = smollm2.model.layers[5].output.save()
    assert edited.abs().max() == 0
    expected, _ = alone(smollm2, PROMPTS[0], 5)
    torch.testing.assert_close(seen, expected, rtol=1e-4, atol=1e-5)


def test_each_invoke_in_a_loop_sees_its_own_loop_variable(smollm2):
    outputs = [None] * len(PROMPTS)
    with smollm2.trace() as tracer:
        for i, prompt in enumerate(PROMPTS):
            with tracer.invoke(prompt):
                outputs[i] = smollm2.model.layers[4].output[:, -1].save()
    for prompt, output in zip(PROMPTS, outputs):
        expected, _ = alone(smollm2, prompt, 4)
        torch.testing.assert_close(output, expected[:, -1], rtol=1e-4, atol=1e-5)


def test_names_bound_in_invokes_come_back_as_function_locals(tiny_llama):
    def run():
        with tiny_llama.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                hidden = tiny_llama.model.layers[0].output.save()
                count = 7
            with tracer.invoke(PROMPTS[1]):
                other = tiny_llama.model.layers[0].output.save()
        return hidden, count, other

    hidden, count, other = run()
    assert count == 7
    assert torch.allclose(hidden, alone(tiny_llama, PROMPTS[0], 0)[0], atol=1e-5)
    n = len(tiny_llama.tokenizer(PROMPTS[1]).input_ids)
    assert torch.allclose(other[:, -n:], alone(tiny_llama, PROMPTS[1], 0)[0], atol=1e-5)


def test_a_list_of_prompts_in_one_invoke(smollm2):
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPTS[:2]):
            both = smollm2.model.layers[6].output.save()
        with tracer.invoke(PROMPTS[2]):
            third = smollm2.model.layers[6].output.save()
    assert both.shape[0] == 2 and third.shape[0] == 1
    for row, prompt in enumerate(PROMPTS[:2]):
        expected, _ = alone(smollm2, prompt, 6)
        n = expected.shape[1]
        torch.testing.assert_close(both[row : row + 1, -n:], expected, rtol=1e-4, atol=1e-5)


def test_inputs_in_both_trace_and_invoke_is_an_error(tiny_llama):
    with pytest.raises(InputError, match="not both"):
        with tiny_llama.trace(PROMPTS[0]) as tracer:
            with tracer.invoke(PROMPTS[1]):
                pass


@pytest.mark.skipif(not hasattr(BaseException, "add_note"), reason="notes need Python 3.11")
def test_using_a_name_before_an_earlier_invoke_binds_it_is_explained(smollm2):
    with pytest.raises(NameError) as caught:
        with smollm2.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                late_value = smollm2.model.layers[20].output.save()
            with tracer.invoke(PROMPTS[0]):
                smollm2.model.layers[2].output[:] = late_value[:, :1]
    assert "invoke 0 binds 'late_value'" in "\n".join(caught.value.__notes__)
