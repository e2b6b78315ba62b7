"""Every input form a language-model trace accepts, and clear errors for the rest."""

from __future__ import annotations

import pytest
import torch

from lenslab import InputError

PROMPT = "The Eiffel Tower is located in the city of"
SHORT = "Hello there"


def solo(model, prompt):
    with torch.no_grad():
        return model._model(**model.tokenizer(prompt, return_tensors="pt")).logits


def logits_of(model, *args, **kwargs):
    with model.trace(*args, **kwargs):
        logits = model.output.logits.save()
    return logits


def test_every_form_of_one_prompt_gives_the_same_logits(smollm2):
    expected = solo(smollm2, PROMPT)
    encoded = smollm2.tokenizer(PROMPT, return_tensors="pt")
    ids = encoded["input_ids"]
    forms = {
        "string": ((PROMPT,), {}),
        "1-D tensor": ((ids[0],), {}),
        "2-D tensor": ((ids,), {}),
        "list of ints": ((ids[0].tolist(),), {}),
        "list of lists": ((ids.tolist(),), {}),
        "tokenizer output": ((encoded,), {}),
        "plain dict": (({"input_ids": ids, "attention_mask": encoded["attention_mask"]},), {}),
        "keywords only": ((), {"input_ids": ids, "attention_mask": encoded["attention_mask"]}),
        "input_ids keyword alone": ((), {"input_ids": ids}),
    }
    for name, (args, kwargs) in forms.items():
        assert torch.equal(logits_of(smollm2, *args, **kwargs), expected), name


def test_a_list_of_strings_is_left_padded_and_each_row_equals_its_solo_run(smollm2):
    logits = logits_of(smollm2, [PROMPT, SHORT])
    assert logits.shape[0] == 2
    for row, prompt in enumerate([PROMPT, SHORT]):
        expected = solo(smollm2, prompt)
        n = expected.shape[1]
        torch.testing.assert_close(logits[row : row + 1, -n:], expected, rtol=1e-4, atol=1e-4)


def test_other_keywords_reach_the_forward(smollm2):
    with smollm2.trace(PROMPT, output_attentions=True) as tracer:
        pass
    assert tracer.result.attentions is not None


BAD = {
    "float ids": ((torch.rand(1, 4),), {}, "integer token ids"),
    "ragged lists": (([[1, 2, 3], [4]],), {}, "different lengths"),
    "dict without input_ids": (({"text": "x"},), {}, "no 'input_ids'"),
    "two positional inputs": (("a", "b"), {}, "2 positional inputs"),
    "unsupported type": ((3.5,), {}, "cannot use a float"),
    "mask of another shape": (
        (torch.ones(1, 4, dtype=torch.long),),
        {"attention_mask": torch.ones(1, 3)},
        "attention_mask has shape",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_are_named(smollm2, case):
    args, kwargs, message = BAD[case]
    with pytest.raises(InputError, match=message):
        smollm2.trace(*args, **kwargs).__enter__()


def test_no_inputs_inside_a_trace_body_is_an_error(smollm2):
    with pytest.raises(InputError, match="needs inputs"):
        with smollm2.trace() as tracer:
            tracer.invoke()
