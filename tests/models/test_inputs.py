"""Every input form a language-model trace accepts, clear errors for the rest, lazy loading.

Expected values come from the plain Hugging Face forward on the tokenizer's own encoding.
"""

from __future__ import annotations

import pytest
import torch
from transformers import BatchEncoding

from lenslab import InputError, LanguageModel

PROMPT = "The Eiffel Tower is located in the city of"
SHORT = "Hello there"


def solo(model, prompt):
    with torch.no_grad():
        return model._model(**model.tokenizer(prompt, return_tensors="pt")).logits


def logits_of(model, *args, **kwargs):
    with model.trace(*args, **kwargs):
        logits = model.output.logits.save()
    return logits


def assert_row(actual, expected):
    """A left-padded row ends with its solo run (float noise of the padded batch aside)."""
    n = expected.shape[1]
    atol = 1e-5 + 5e-5 * expected.abs().max().item()
    torch.testing.assert_close(actual[:, -n:], expected, rtol=1e-4, atol=atol)


# -- one prompt, every form ----------------------------------------------------------------------


def test_every_form_of_one_prompt_gives_the_same_logits(smollm2):
    expected = solo(smollm2, PROMPT)
    encoded = smollm2.tokenizer(PROMPT, return_tensors="pt")
    assert isinstance(encoded, BatchEncoding)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    forms = {
        "string": ((PROMPT,), {}),
        "1-D tensor": ((ids[0],), {}),
        "2-D tensor": ((ids,), {}),
        "list of ints": ((ids[0].tolist(),), {}),
        "list of lists": ((ids.tolist(),), {}),
        "tuple of ints": ((tuple(ids[0].tolist()),), {}),
        "BatchEncoding": ((encoded,), {}),
        "plain dict": (({"input_ids": ids, "attention_mask": mask},), {}),
        "dict of lists": (({"input_ids": ids.tolist(), "attention_mask": mask.tolist()},), {}),
        "tensor and mask keyword": ((ids,), {"attention_mask": mask}),
        "keywords only": ((), {"input_ids": ids, "attention_mask": mask}),
        "input_ids keyword alone": ((), {"input_ids": ids}),
    }
    for name, (args, kwargs) in forms.items():
        assert torch.equal(logits_of(smollm2, *args, **kwargs), expected), name


def test_keyword_only_inputs_run_the_body_inside_the_forward(tiny_gpt2):
    """Seed 2, rule 1: nnsight runs a keywords-only trace outside the forward; lenslab does not."""
    ids = tiny_gpt2.tokenizer(PROMPT, return_tensors="pt").input_ids
    with tiny_gpt2.trace(input_ids=ids):
        hidden = tiny_gpt2.transformer.h[0].output.save()
    states = tiny_gpt2._model(ids, output_hidden_states=True).hidden_states
    assert torch.equal(hidden, states[1])


def test_token_ids_skip_the_tokenizer(smollm2):
    """Ids are used as given: no special tokens are added, whatever the ids are."""
    ids = [1, 2, 3, 50, 9000]
    with smollm2.trace(ids):
        _, given = smollm2.inputs
        logits = smollm2.output.logits.save()
    assert given["input_ids"].tolist() == [ids]
    assert given["attention_mask"].tolist() == [[1] * len(ids)]
    with torch.no_grad():
        assert torch.equal(logits, smollm2._model(torch.tensor([ids])).logits)


# -- several prompts in one input ---------------------------------------------------------------


def test_a_list_of_strings_is_left_padded_and_each_row_equals_its_solo_run(lm):
    prompts = [SHORT, PROMPT]
    with lm.trace(prompts):
        _, given = lm.inputs
        logits = lm.output.logits.save()
    padded = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    short = lm.tokenizer(SHORT, return_tensors="pt").input_ids
    n, total = short.shape[1], padded["input_ids"].shape[1]
    assert logits.shape[:2] == (2, total)
    assert torch.equal(given["input_ids"], padded["input_ids"])
    assert torch.equal(given["input_ids"][:1, -n:], short)  # padding on the left
    assert given["attention_mask"][0].tolist() == [0] * (total - n) + [1] * n
    for row, prompt in enumerate(prompts):
        assert_row(logits[row : row + 1], solo(lm, prompt))


def test_batched_token_ids_with_a_mask(smollm2):
    encoded = smollm2.tokenizer([SHORT, PROMPT], return_tensors="pt", padding=True)
    for args, kwargs in (
        ((encoded,), {}),
        ((encoded["input_ids"],), {"attention_mask": encoded["attention_mask"]}),
        ((encoded["input_ids"].tolist(),), {"attention_mask": encoded["attention_mask"]}),
        ((), dict(encoded)),
    ):
        logits = logits_of(smollm2, *args, **kwargs)
        assert logits.shape[0] == 2
        assert_row(logits[:1], solo(smollm2, SHORT))
        assert_row(logits[1:], solo(smollm2, PROMPT))


def test_other_keywords_reach_the_forward(smollm2):
    with smollm2.trace(PROMPT, output_hidden_states=True) as tracer:
        pass
    with torch.no_grad():
        expected = smollm2._model(
            **smollm2.tokenizer(PROMPT, return_tensors="pt"), output_hidden_states=True
        ).hidden_states
    assert len(tracer.result.hidden_states) == len(expected) == 31
    assert torch.equal(tracer.result.hidden_states[7], expected[7])


# -- bad inputs -----------------------------------------------------------------------------------


BAD = {
    "float ids": ((torch.rand(1, 4),), {}, "integer token ids"),
    "3-D ids": ((torch.ones(1, 2, 3, dtype=torch.long),), {}, "integer token ids"),
    "ragged lists": (([[1, 2, 3], [4]],), {}, "different lengths"),
    "dict without input_ids": (({"text": "x"},), {}, "no 'input_ids'"),
    "keywords without input_ids": ((), {"attention_mask": torch.ones(1, 3)}, "no inputs"),
    "two positional inputs": (("a", "b"), {}, "2 positional inputs"),
    "unsupported type": ((3.5,), {}, "cannot use a float"),
    "empty list": (([],), {}, "input"),
    "empty string": (("",), {}, "token"),
    "empty ids": ((torch.tensor([], dtype=torch.long),), {}, "token"),
    "mask of another shape": (
        (torch.ones(1, 4, dtype=torch.long),),
        {"attention_mask": torch.ones(1, 3)},
        "attention_mask has shape",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_are_named(tiny_llama, case):
    args, kwargs, message = BAD[case]
    with pytest.raises(InputError, match=message):
        with tiny_llama.trace(*args, **kwargs):
            tiny_llama.model.layers[0].output.save()


def test_bad_invoke_inputs_are_named(tiny_llama):
    with pytest.raises(InputError, match="integer token ids"):
        with tiny_llama.trace() as tracer:
            with tracer.invoke(torch.rand(1, 4)):
                tiny_llama.model.layers[0].output.save()


def test_a_trace_of_only_promptless_invokes_is_an_input_error(tiny_llama):
    with pytest.raises(InputError, match=r"none of this trace's tracer\.invoke\(\) blocks has"):
        with tiny_llama.trace() as tracer:
            with tracer.invoke():
                tiny_llama.model.layers[0].output.save()


def test_reading_a_value_in_a_trace_without_inputs_is_an_input_error(tiny_llama):
    with pytest.raises(InputError, match="input"):
        with tiny_llama.trace():
            tiny_llama.model.layers[0].output.save()


def test_a_trace_without_inputs_or_invokes_is_an_input_error(tiny_llama):
    with pytest.raises(InputError, match="input"):
        with tiny_llama.trace():
            pass


# -- lazy loading ---------------------------------------------------------------------------------


def test_lazy_model_builds_on_meta_and_loads_on_first_trace(smollm2, capsys):
    model = LanguageModel("smollm2")  # dispatch=False by default
    assert model.dispatched is False
    assert {p.device.type for p in model._model.parameters()} == {"meta"}
    print(model)
    assert "LlamaDecoderLayer" in capsys.readouterr().out
    assert len(model.model.layers) == 30 and model.tokenizer is not None
    layer = model.model.layers[4]  # envoys made before the weights exist
    attention = model.model.layers[7].self_attn
    with model.trace() as tracer:
        with tracer.invoke(PROMPT):
            lazy = layer.output.save()
        with tracer.invoke(SHORT):
            lazy_attn = attention.output[0].save()
            lazy_logits = model.output.logits.save()
    assert model.dispatched is True
    assert {p.device.type for p in model._model.parameters()} == {"cpu"}
    assert layer._module is model._model.model.layers[4]
    assert attention._module is model._model.model.layers[7].self_attn
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPT):
            eager = smollm2.model.layers[4].output.save()
        with tracer.invoke(SHORT):
            eager_attn = smollm2.model.layers[7].self_attn.output[0].save()
            eager_logits = smollm2.output.logits.save()
    assert torch.equal(lazy, eager)
    assert torch.equal(lazy_attn, eager_attn)
    assert torch.equal(lazy_logits, eager_logits)
    loaded = model._model
    with model.trace(PROMPT):  # later traces reuse the loaded weights
        again = layer.output.save()
    with smollm2.trace(PROMPT):
        expected = smollm2.model.layers[4].output.save()
    assert model._model is loaded and torch.equal(again, expected)
