"""PatchingGrid: a simulated click runs one patch whose top-k equals a plain-hook patch; the
sweep fills the grid batch by batch and ends equal to activation_patching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenslab import activation_patching
from lenslab.widgets import PatchingGrid

from ..conftest import hooked
from .conftest import front_end_sends, pause_at

CLEAN = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED = "When John and Mary went to the shops, Mary gave the bag to"


@pytest.fixture(scope="module")
def grid(smollm2):
    return PatchingGrid(smollm2, CLEAN, CORRUPTED, " Mary", " John")


def plain_patch(model, layer, position):
    """Clean layer output at ``position`` into the corrupted run, with plain forward hooks."""
    block = model._model.model.layers[layer]
    encode = lambda text: model.tokenizer(text, return_tensors="pt")  # noqa: E731
    with hooked({"b": block}) as clean, torch.no_grad():
        clean_logits = model._model(**encode(CLEAN)).logits

    def patch(out):
        out = out.clone()
        out[:, position] = clean["b"][:, position]
        return out

    with hooked({"b": block}, edit={"b": patch}), torch.no_grad():
        patched = model._model(**encode(CORRUPTED)).logits
    with torch.no_grad():
        corrupted = model._model(**encode(CORRUPTED)).logits
    return clean_logits[0, -1], corrupted[0, -1], patched[0, -1]


def top(model, logits, k=5):
    values = logits.softmax(-1).topk(k)
    return [(model.tokenizer.decode(int(i)), float(p)) for p, i in zip(*values)]


def as_pairs(tokens):
    return [(t["token"], t["prob"]) for t in tokens]


def test_a_click_patches_that_cell_like_plain_hooks(grid, smollm2, wire):
    sent = wire(grid)
    front_end_sends(grid, {"kind": "patch", "id": 41, "layer": 20, "position": 13})
    assert sent.custom()[-1] == {"kind": "reply", "id": 41, "ok": True, "error": ""}
    clean, corrupted, patched = plain_patch(smollm2, 20, 13)
    detail = grid.detail
    for name, logits in (("clean", clean), ("corrupted", corrupted), ("patched", patched)):
        expected = top(smollm2, logits)
        got = as_pairs(detail[name])
        assert [t for t, _ in got] == [t for t, _ in expected], name
        np.testing.assert_allclose([p for _, p in got], [p for _, p in expected], atol=1e-4)
    mary, john = (smollm2.tokenizer.encode(t)[0] for t in (" Mary", " John"))
    diff = lambda logits: float(logits[mary] - logits[john])  # noqa: E731
    score = (diff(patched) - diff(corrupted)) / (diff(clean) - diff(corrupted))
    assert detail["score"] == pytest.approx(score, abs=1e-3)
    assert grid.array[20, 13] == pytest.approx(score, abs=1e-3)
    assert grid.selected == [20, 13]
    assert np.isnan(grid.array[19, 13])  # only that cell was computed


def test_a_bad_request_is_answered_with_an_error(grid, wire):
    sent = wire(grid)
    front_end_sends(grid, {"kind": "patch", "id": 5, "layer": 30, "position": 0})
    reply = sent.custom()[-1]
    assert reply["id"] == 5 and not reply["ok"] and "outside the 30 x 14 grid" in reply["error"]
    assert "outside" in grid.error and not grid.busy
    front_end_sends(grid, {"kind": "nonsense", "id": 6})
    assert sent.custom()[-1]["error"] == "unknown request 'nonsense'"


def test_the_sweep_button_fills_the_grid_progressively(grid, smollm2, wire):
    sent = wire(grid)
    front_end_sends(grid, {"kind": "sweep", "id": 9})
    assert sent.custom()[-1]["ok"]  # accepted: it runs in the background
    grid.wait(timeout=600)
    assert grid.outcome == "sweep done" and not grid.busy and grid.task == ""
    updates = sent.updates("values")
    assert len(updates) == 30  # one forward (one layer's row of 14 patches) at a time
    filled = [
        int(np.isfinite(np.frombuffer(bytes(buffers[0]), "<f4")).sum()) for _, buffers in updates
    ]
    assert filled == sorted(filled) and filled[-1] == 30 * 14 and filled[0] <= 15
    progress = [m["state"]["progress"] for m, _ in sent.updates("progress")]
    assert progress[-1] == 1.0 and progress == sorted(progress)
    columns = [9, 12, 13]
    result = activation_patching(
        smollm2,
        CLEAN,
        CORRUPTED,
        " Mary",
        " John",
        components=["resid"],
        positions=columns,
        batch_size=90,
        progress=False,
    )
    np.testing.assert_allclose(grid.array[:, columns], result.scores["resid"].numpy(), atol=1e-4)
    assert np.abs(grid.array[:, :9]).max() == 0  # identical prefix: patching changes nothing
    again = PatchingGrid(smollm2, CLEAN, CORRUPTED, " Mary", " John", result=result)
    np.testing.assert_allclose(again.array[:, columns], grid.array[:, columns], atol=1e-6)
    assert np.isnan(again.array[:, 0]).all()
    html = grid._repr_mimebundle_()[0]["text/html"]
    assert html.count("<td") >= 30 * 14


def test_a_background_sweep_refuses_clicks_reports_time_left_and_cancels(smollm2, wire):
    grid = PatchingGrid(smollm2, CLEAN, CORRUPTED, " Mary", " John")
    sent = wire(grid)
    reached, go = pause_at(grid, 2 * 14)  # after two rows
    front_end_sends(grid, {"kind": "sweep", "id": 1})
    assert sent.custom()[-1] == {"kind": "reply", "id": 1, "ok": True, "error": ""}
    assert reached.wait(300), "the sweep never got past two rows"
    assert grid.running and grid.busy and grid.task == "sweep"
    assert grid.progress == pytest.approx(2 / 30) and grid.eta > 0
    front_end_sends(grid, {"kind": "patch", "id": 2, "layer": 3, "position": 4})
    front_end_sends(grid, {"kind": "sweep", "id": 3})
    refused = sent.custom()[-2:]
    assert [r["ok"] for r in refused] == [False, False]
    assert "refused: the sweep is running (7%)" in refused[0]["error"]
    assert "layer 3, position 4 again" in refused[0]["error"]
    assert "refused: a sweep is running" in refused[1]["error"]
    assert grid.error == "" and grid.busy  # a refusal is no error, and the sweep goes on
    front_end_sends(grid, {"kind": "cancel", "id": 4})
    go.set()
    grid.wait(timeout=120)
    assert not grid.running and not grid.busy and grid.task == "" and grid.eta == -1
    assert grid.outcome == "sweep cancelled at 7%" and grid.result is None
    filled = np.isfinite(grid.array).all(axis=1)
    assert filled[:2].all() and not filled[3:].any()  # the rows done stay, no more are run
    np.testing.assert_allclose(grid.array[:2, 13], [plain_score(smollm2, i, 13) for i in (0, 1)],
                               atol=1e-3)  # fmt: skip
    front_end_sends(grid, {"kind": "patch", "id": 5, "layer": 3, "position": 4})
    assert sent.custom()[-1]["ok"]  # after the run, clicks work again


def test_a_background_sweep_stops_when_the_models_edits_change_under_it(smollm2, wire):
    grid = PatchingGrid(smollm2, CLEAN, CORRUPTED, " Mary", " John")
    wire(grid)
    reached, go = pause_at(grid, 14)  # after one row
    front_end_sends(grid, {"kind": "sweep", "id": 1})
    assert reached.wait(300), "the sweep never got past a row"
    try:
        with smollm2.edit(inplace=True):  # from "another cell", while the sweep runs
            smollm2.model.layers[0].output[:] *= 1.0
        go.set()
        grid.wait(timeout=120)
    finally:
        smollm2.clear_edits()
    assert grid.outcome == "sweep failed" and grid.result is None
    assert "persistent edits changed while it ran" in grid.error
    filled = np.isfinite(grid.array).all(axis=1)
    assert filled[0] and not filled[2:].any()  # nothing computed under the new edits is shown


def plain_score(model, layer, position):
    clean, corrupted, patched = plain_patch(model, layer, position)
    mary, john = (model.tokenizer.encode(t)[0] for t in (" Mary", " John"))
    diff = lambda logits: float(logits[mary] - logits[john])  # noqa: E731
    return (diff(patched) - diff(corrupted)) / (diff(clean) - diff(corrupted))


def test_a_sweep_from_code_runs_in_the_cell_and_returns_the_result(smollm2):
    grid = PatchingGrid(smollm2, CLEAN, CORRUPTED, " Mary", " John")
    result = grid.sweep(batch_size=14 * 15)
    assert result is grid.result and grid.outcome == "sweep done" and grid.progress == 1.0
    np.testing.assert_allclose(grid.array, result.scores["resid"].numpy(), atol=1e-6)
