"""The toolkit's figures: every hover names the row, the column and the value."""

from __future__ import annotations

import sys

import pytest
import torch

from lenslab import activation_patching, logit_lens, steer, steering_vector

EIFFEL = "The Eiffel Tower is located in the city of"
CLEAN = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED = "When John and Mary went to the shops, Mary gave the bag to"


def names_row_column_and_value(template: str, row: str, column: str, value: str) -> bool:
    return all(part in template for part in (row, column, value))


def test_every_tool_hover_names_row_column_and_value(smollm2):
    lens = logit_lens(smollm2, EIFFEL, top_k=3, layers=[0, 29])
    (heat,) = lens.plot().data
    assert names_row_column_and_value(heat.hovertemplate, "%{y}", "%{x}", "%{z")
    patching = activation_patching(
        smollm2, CLEAN, CORRUPTED, " Mary", " John", components=["resid"], positions=[-1],
        batch_size=30, progress=False,
    )  # fmt: skip
    for trace in patching.plot().data:
        assert names_row_column_and_value(trace.hovertemplate, "%{y}", "%{x}", "%{z")
    vector = steering_vector(smollm2, ["Love"], ["Hate"], layer=10)
    result = steer(smollm2, "I think that you are", vector, 10, coefficient=2.0, positions=-1)
    figure = result.plot(smollm2, top_k=3)
    assert [t.name for t in figure.data] == ["baseline", "steered (x2)"]
    for trace in figure.data:
        assert names_row_column_and_value(trace.hovertemplate, trace.name, "%{x}", "%{y")
    top = int(result.steered.argmax())
    label = repr(smollm2.tokenizer.decode(top))
    steered = figure.data[1]
    assert steered.y[list(steered.x).index(label)] == torch.exp(result.steered[top]).item()


# -- data out: records, numpy, data frames, themes ------------------------------------------------


def hooked_lens_top1(model, prompt, layer):
    from ..conftest import hooked

    hf = model._model
    with hooked({"l": hf.model.layers[layer]}) as seen, torch.no_grad():
        hf(**model.tokenizer(prompt, return_tensors="pt"))
        probs = hf.lm_head(hf.model.norm(seen["l"][0])).softmax(-1)
    return probs.max(-1)


def test_logit_lens_records_equal_a_plain_hooked_lens(smollm2):
    lens = logit_lens(smollm2, EIFFEL, top_k=2, layers=[3, 29])
    rows = lens.to_records()
    assert len(rows) == 2 * lens.tokens.count * 2
    for layer in (3, 29):
        values, ids = hooked_lens_top1(smollm2, EIFFEL, layer)
        top1 = [r for r in rows if r["layer"] == layer and r["rank"] == 0]
        assert [r["position"] for r in top1] == list(range(lens.tokens.count))
        assert [r["token_id"] for r in top1] == ids.tolist()
        assert [r["prob"] for r in top1] == pytest.approx(values.tolist(), abs=1e-4)
        assert [r["token"] for r in top1] == list(lens.tokens.text)
    assert rows[-2]["top_token"] == " Paris"
    arrays = lens.to_numpy()
    assert arrays["probs"].shape == (2, lens.tokens.count, 2)


def test_patching_records_and_arrays_match_the_scores(smollm2):
    result = activation_patching(
        smollm2, CLEAN, CORRUPTED, " Mary", " John", components=["resid"], positions=[9, 13],
        batch_size=60, progress=False,
    )  # fmt: skip
    rows = result.to_records()
    assert len(rows) == 30 * 2 and set(rows[0]) == {
        "component", "layer", "position", "token", "score"
    }  # fmt: skip
    grid = result.to_numpy()["resid"]
    for row in rows:
        column = [9, 13].index(row["position"])
        assert row["score"] == pytest.approx(float(grid[row["layer"], column]))
        assert row["token"] == result.clean.text[row["position"]]
    best = max(rows, key=lambda r: r["score"])
    assert (best["position"], best["token"]) == (9, " John")


def test_steering_records_are_the_log_probabilities(smollm2):
    vector = steering_vector(smollm2, ["Love"], ["Hate"], layer=10)
    result = steer(smollm2, "I think that you are", vector, 10, coefficient=3.0, positions=-1)
    rows = result.to_records(smollm2, top_k=3)
    love = smollm2.tokenizer.encode(" love")[0]
    for row in rows:
        assert row["baseline"] == pytest.approx(float(result.baseline[row["token_id"]]))
        assert row["shift"] == pytest.approx(row["steered"] - row["baseline"])
    _, steered = result.log_prob(smollm2, " love")
    assert result.to_numpy()["steered"][love] == pytest.approx(steered)


def test_to_dataframe_needs_pandas_and_says_so(smollm2, monkeypatch):
    from lenslab.errors import LensError

    lens = logit_lens(smollm2, EIFFEL, top_k=1, layers=[29])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(LensError, match=r"needs pandas.*pip install pandas.*to_records"):
        lens.to_dataframe()


def test_to_dataframe_equals_the_records(smollm2):
    pytest.importorskip("pandas")
    lens = logit_lens(smollm2, EIFFEL, top_k=1, layers=[29])
    frame = lens.to_dataframe()
    assert frame.to_dict("records") == lens.to_records()


@pytest.mark.parametrize("theme", ["light", "dark", "auto"])
def test_tool_plots_follow_the_theme_templates(smollm2, theme):
    import plotly.io as pio

    lens = logit_lens(smollm2, EIFFEL, top_k=1, layers=[0, 29])
    figure = lens.plot(theme=theme)
    if theme == "auto":
        assert figure.layout.paper_bgcolor == "rgba(0,0,0,0)"
        assert figure.layout.template == pio.templates["plotly"]  # plotly's default, untouched
    else:
        name = {"light": "plotly_white", "dark": "plotly_dark"}[theme]
        assert figure.layout.template == pio.templates[name]
    if theme == "dark":
        assert figure.layout.paper_bgcolor == "rgba(0,0,0,0)"
    with pytest.raises(ValueError, match="theme must be one of"):
        lens.plot(theme="sepia")
