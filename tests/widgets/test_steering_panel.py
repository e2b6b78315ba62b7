"""SteeringPanel: generations equal Hugging Face generate with a plain steering hook; a slider
move from the front end regenerates with busy set while it runs."""

from __future__ import annotations

import pytest
import torch

from lenslab import steering_vector
from lenslab.widgets import SteeringPanel

from .conftest import front_end_sends, front_end_sets, pause_at

PROMPT = "I think that you are"
POSITIVE = ["I love you", "You are wonderful"]
NEGATIVE = ["I hate you", "You are terrible"]
TOKENS = 6


def hooked_generation(model, vector, layers, coefficient):
    """Greedy HF generate, ``coefficient * vector`` added to every position at ``layers``."""
    hf = model._model

    def add(module, args, output):
        return output + coefficient * vector

    handles = [hf.model.layers[i].register_forward_hook(add) for i in layers]
    try:
        with torch.no_grad():
            ids = hf.generate(
                **model.tokenizer(PROMPT, return_tensors="pt"),
                max_new_tokens=TOKENS,
                do_sample=False,
            )
    finally:
        for handle in handles:
            handle.remove()
    return model.tokenizer.decode(ids[0], skip_special_tokens=True)


@pytest.fixture(scope="module")
def panel(smollm2):
    return SteeringPanel(
        smollm2, PROMPT, positive=POSITIVE, negative=NEGATIVE, layers=8, max_new_tokens=TOKENS
    )


def test_first_render_shows_baseline_and_steered_like_plain_hooks(panel, smollm2):
    vector = steering_vector(smollm2, POSITIVE, NEGATIVE, layer=8)
    assert panel.baseline == hooked_generation(smollm2, vector, [], 0.0)
    assert panel.steered == hooked_generation(smollm2, vector, [8], 1.0)
    assert panel.runs == 1 and not panel.busy
    html = panel._repr_mimebundle_()[0]["text/html"]
    assert "baseline" in html and panel.steered.split()[-1] in html
    baseline, steered = panel.to_records()
    assert (baseline["text"], steered["text"]) == (panel.baseline, panel.steered)
    assert (steered["coefficient"], steered["layers"]) == (1.0, [8])
    assert list(panel.figure().data[0].cells.values) == [[panel.baseline], [panel.steered]]


def test_a_slider_move_regenerates_with_a_busy_indicator(panel, smollm2, wire):
    sent = wire(panel)
    runs = panel.runs
    front_end_sets(panel, coefficient=-2.0)
    panel.wait()
    busy = [message["state"]["busy"] for message, _ in sent.updates("busy")]
    assert busy == [True, False]
    assert panel.runs == runs + 1
    vector = steering_vector(smollm2, POSITIVE, NEGATIVE, layer=8)
    assert panel.steered == hooked_generation(smollm2, vector, [8], -2.0)
    assert panel.steered != panel.baseline


def test_layers_from_the_front_end_recompute_the_vector(panel, smollm2):
    front_end_sets(panel, layers=[12, 4])
    panel.wait()
    assert panel.layers == [4, 12]
    vector = steering_vector(smollm2, POSITIVE, NEGATIVE, layer=4)
    assert panel.steered == hooked_generation(smollm2, vector, [4, 12], panel.coefficient)
    front_end_sets(panel, layers=[])
    panel.wait()
    assert panel.error == "choose at least one layer"


def test_a_saved_vector(smollm2):
    vector = torch.randn(576, generator=torch.Generator().manual_seed(1)) * 3
    panel = SteeringPanel(
        smollm2, PROMPT, vector=vector, layers=[6], coefficient=2.0, max_new_tokens=TOKENS
    )
    assert panel.source == "saved vector, shape (576,)"
    assert panel.steered == hooked_generation(smollm2, vector, [6], 2.0)
    with pytest.raises(ValueError, match="either"):
        SteeringPanel(smollm2, PROMPT)


def test_a_coefficient_from_code_beyond_the_slider_widens_its_range(panel):
    panel.layers = [8]
    low, high = panel.low, panel.high
    panel.coefficient = 50
    assert panel.coefficient == 50.0 and panel.high == 50.0 and panel.low == low
    assert panel.shown_coefficient == 50.0  # regenerated: the header labels the new text
    panel.coefficient = -7.25
    assert (panel.low, panel.high) == (-8.0, 50.0)
    panel.high = high
    assert panel.coefficient == -7.25
    panel.low = -2.0  # a narrower range moves the coefficient inside it, as a slider would
    assert panel.coefficient == -2.0 and panel.shown_coefficient == -2.0
    panel.low = low


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "big", None])
def test_a_coefficient_that_is_no_finite_number_is_a_lens_error_shown_in_the_panel(panel, bad):
    from lenslab.errors import LensError

    before = panel.coefficient
    with pytest.raises(LensError, match="coefficient must be a finite number"):
        panel.coefficient = bad
    assert panel.coefficient == before and "finite number" in panel.error
    with pytest.raises(LensError, match="low < high"):
        panel.low = panel.high + 1


def test_headers_name_the_setting_of_the_text_they_label(smollm2, wire):
    panel = SteeringPanel(
        smollm2, PROMPT, positive=POSITIVE, negative=NEGATIVE, layers=8, max_new_tokens=2
    )
    assert (panel.shown_coefficient, panel.shown_layers) == (1.0, [8])
    sent = wire(panel)
    front_end_sets(panel, coefficient=-2.0)
    panel.wait()
    # the header's setting travels in the same message as the text it labels
    (message, _), *_ = sent.updates("steered")
    assert message["state"]["shown_coefficient"] == -2.0 and "steered" in message["state"]
    shown = [m["state"]["shown_coefficient"] for m, _ in sent.updates("shown_coefficient")]
    assert shown == [-2.0]
    assert "steered (x-2)" in panel._repr_mimebundle_()[0]["text/html"]


def test_a_move_while_generating_is_queued_and_the_latest_setting_wins(smollm2, wire):
    panel = SteeringPanel(
        smollm2, PROMPT, positive=POSITIVE, negative=NEGATIVE, layers=8, max_new_tokens=TOKENS
    )
    sent = wire(panel)
    reached, go = pause_at(panel, 2)  # at the second token
    front_end_sets(panel, coefficient=3.0)
    assert reached.wait(300)
    assert panel.task == "generate" and panel.progress == pytest.approx(2 / TOKENS)
    assert panel.eta > 0
    front_end_sets(panel, coefficient=-3.0)  # while the first runs: queued, the first stops
    assert panel.queued == "×-3 at layers [8]"
    go.set()
    panel.wait(timeout=300)
    assert panel.queued == "" and not panel.busy and panel.outcome == "generate done"
    assert panel.shown_coefficient == -3.0 and panel.runs == 2  # the first never showed
    vector = steering_vector(smollm2, POSITIVE, NEGATIVE, layer=8)
    assert panel.steered == hooked_generation(smollm2, vector, [8], -3.0)
    outcomes = [m["state"]["outcome"] for m, _ in sent.updates("outcome")]
    assert "generate cancelled at 33%" in outcomes
    progress = [m["state"]["progress"] for m, _ in sent.updates("progress")]
    assert progress[-1] == 1.0


def test_cancel_keeps_the_text_shown(smollm2, wire):
    panel = SteeringPanel(
        smollm2, PROMPT, positive=POSITIVE, negative=NEGATIVE, layers=8, max_new_tokens=TOKENS
    )
    before = (panel.steered, panel.shown_coefficient, panel.runs)
    reached, go = pause_at(panel, 1)
    front_end_sets(panel, coefficient=4.0)
    assert reached.wait(300)
    front_end_sends(panel, {"kind": "cancel", "id": 1})
    go.set()
    panel.wait(timeout=300)
    assert (panel.steered, panel.shown_coefficient, panel.runs) == before
    assert panel.outcome.startswith("generate cancelled") and panel.coefficient == 4.0
    assert not panel.busy and panel.task == ""
