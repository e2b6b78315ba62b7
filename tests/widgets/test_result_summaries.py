"""Toolkit results print a few lines (shape, top tokens, best patch) instead of whole tensors,
and display their plot in a notebook (``_repr_mimebundle_``)."""

from __future__ import annotations

import pytest

from lenslab import (
    activation_patching,
    attribution_patching,
    logit_lens,
    steer,
    steering_vector,
)

PROMPT = "The Eiffel Tower is located in the city of"
CLEAN = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED = "When John and Mary went to the shops, Mary gave the bag to"
PLOTLY = "application/vnd.plotly.v1+json"


def short(text: str, lines: int) -> None:
    assert len(text.splitlines()) <= lines, text
    assert "tensor(" not in text, text


def test_logit_lens_prints_its_shape_and_top_tokens(smollm2):
    lens = logit_lens(smollm2, PROMPT)
    text = str(lens)
    short(text, 5)
    assert text.startswith("LogitLens: 30 layers x 10 positions, top-5 (10 tokens, no BOS)")
    top = lens.top_tokens[-1][-1][0]
    assert f"layer 29, last position (' of'): {top!r} {float(lens.probs[-1, -1, 0]):.3f}" in text
    first = next(i for i, row in enumerate(lens.top_tokens) if row[-1][0] == top)
    assert f"{top!r} is first top-1 there at layer {first}" in text
    bundle = lens._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert bundle[PLOTLY]["data"][0]["type"] == "heatmap"
    assert bundle[PLOTLY]["layout"]["paper_bgcolor"] == "rgba(0,0,0,0)"  # follows either theme


def test_patching_prints_the_best_patch(smollm2):
    result = activation_patching(
        smollm2, CLEAN, CORRUPTED, " Mary", " John", components=["resid"],
        positions=[3, 9, 13], progress=False,
    )  # fmt: skip
    text = repr(result)
    short(text, 5)
    assert text.startswith("PatchingResult: resid x 30 layers x 3 positions (14 tokens, no BOS")
    scores = result.scores["resid"]
    layer, column = divmod(int(scores.argmax()), 3)
    position = [3, 9, 13][column]
    token = result.clean.text[position]
    assert f"best resid: layer {layer}, position {position} ({token!r}): {scores.max():.3f}" in text
    assert f"clean {result.clean_metric:.3f}" in text
    assert PLOTLY in result._repr_mimebundle_()
    assert list(result._repr_mimebundle_(include=["text/plain"])) == ["text/plain"]


def test_attribution_prints_its_best_estimate(smollm2):
    result = attribution_patching(smollm2, CLEAN, CORRUPTED, " Mary", " John", components=["mlp"])
    text = str(result)
    short(text, 5)
    scores = result.scores["mlp"]
    layer, position = divmod(int(scores.argmax()), scores.shape[1])
    assert f"best mlp: layer {layer}, position {position} " in text
    assert result._repr_mimebundle_()[PLOTLY]["data"][0]["type"] == "heatmap"


@pytest.mark.parametrize("tokens", [None, 3])
def test_steering_prints_the_shift_and_the_texts(smollm2, tokens):
    vector = steering_vector(smollm2, ["I love you"], ["I hate you"], layer=8)
    result = steer(smollm2, "I think that you are", vector, 8, coefficient=4, max_new_tokens=tokens)
    text = str(result)
    short(text, 4)
    assert text.startswith("SteeringResult: coefficient 4 at layers [8] (5 tokens, no BOS)")
    kl = (result.steered.exp() * (result.steered - result.baseline)).sum()
    assert f"KL(steered || baseline) {kl:.3f} nats" in text
    assert ("steered:  'I think that you are" in text) == (tokens is not None)
    assert result._repr_mimebundle_() == {"text/plain": text}
