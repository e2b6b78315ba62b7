"""Token ids out of the vocabulary and nested junk are InputErrors that say what was wrong.

Without the checks, each of these failed deep inside torch (IndexError in the embedding,
ValueError or TypeError in torch.tensor); now the message names the bad value and the fix, for
model.trace(...), tracer.invoke(...) and model.generate(...), and the model stays clean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lenslab import InputError

from ..conftest import assert_clean

JUNK: list[tuple[Any, str]] = [
    ([[["x"]]], "['x'] (type list)"),
    ([["a", 1]], "'a' (type str)"),
    ([1.5], "1.5 (type float)"),
    ({"input_ids": "x"}, "the string 'x'"),
    ([[1, 2], 3], "3 (type int)"),
]


def _trace(lm: Any, value: Any) -> None:
    with lm.trace(value):
        lm.lm_head.output.save()


def _invoke(lm: Any, value: Any) -> None:
    with lm.trace() as tracer, tracer.invoke(value):
        lm.lm_head.output.save()


def _generate(lm: Any, value: Any) -> None:
    with lm.generate(value, max_new_tokens=2, do_sample=False):
        lm.lm_head.output.save()


WAYS: dict[str, Callable[[Any, Any], None]] = {
    "trace": _trace,
    "invoke": _invoke,
    "generate": _generate,
}


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def lm(request):
    return request.getfixturevalue(request.param)


def assert_still_exact(lm: Any) -> None:
    """No hook left, and a trace of valid ids gives the plain forward's logits."""
    assert_clean(lm._model)
    ids = torch.tensor([[1, 2, 3]])
    with lm.trace(ids):
        logits = lm.lm_head.output.save()
    with torch.no_grad():
        assert torch.equal(logits, lm._model(input_ids=ids).logits)
    assert_clean(lm._model)


@pytest.mark.parametrize("way", list(WAYS))
def test_ids_past_the_vocabulary(lm, way):
    vocab = lm._model.get_input_embeddings().num_embeddings
    for bad, shown in ((vocab, vocab), (vocab + 1000, vocab + 1000)):
        with pytest.raises(InputError) as caught:
            WAYS[way](lm, torch.tensor([[1, bad, 2]]))
        message = str(caught.value)
        assert f"token id {shown}" in message and f"0..{vocab - 1}" in message
        assert f"vocab size {vocab}" in message and "tokenizer" in message
    assert_still_exact(lm)


@pytest.mark.parametrize("way", list(WAYS))
def test_negative_ids(lm, way):
    vocab = lm._model.get_input_embeddings().num_embeddings
    with pytest.raises(InputError, match=rf"token id -1 is outside .* 0\.\.{vocab - 1}"):
        WAYS[way](lm, [[3, -1, 4]])
    assert_still_exact(lm)


@pytest.mark.parametrize("way", list(WAYS))
@pytest.mark.parametrize("junk, shown", JUNK)
def test_nested_junk(lm, way, junk, shown):
    with pytest.raises(InputError) as caught:
        WAYS[way](lm, junk)
    message = str(caught.value)
    assert shown in message, message
    assert "token ids" in message  # says what was expected
    assert_still_exact(lm)


def test_the_largest_and_smallest_ids_still_work(tiny_gpt2):
    lm = tiny_gpt2
    vocab = lm._model.get_input_embeddings().num_embeddings
    ids = torch.tensor([[0, vocab - 1]])
    with lm.trace(ids):
        logits = lm.lm_head.output.save()
    with torch.no_grad():
        assert torch.equal(logits, lm._model(input_ids=ids).logits)
