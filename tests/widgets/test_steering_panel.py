"""SteeringPanel: generations equal Hugging Face generate with a plain steering hook; a slider
move from the front end regenerates with busy set while it runs."""

from __future__ import annotations

import pytest
import torch

from lenslab import steering_vector
from lenslab.widgets import SteeringPanel

from .conftest import front_end_sets

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


def test_a_slider_move_regenerates_with_a_busy_indicator(panel, smollm2, wire):
    sent = wire(panel)
    runs = panel.runs
    front_end_sets(panel, coefficient=-2.0)
    busy = [message["state"]["busy"] for message, _ in sent.updates("busy")]
    assert busy == [True, False]
    assert panel.runs == runs + 1
    vector = steering_vector(smollm2, POSITIVE, NEGATIVE, layer=8)
    assert panel.steered == hooked_generation(smollm2, vector, [8], -2.0)
    assert panel.steered != panel.baseline


def test_layers_from_the_front_end_recompute_the_vector(panel, smollm2):
    front_end_sets(panel, layers=[12, 4])
    assert panel.layers == [4, 12]
    vector = steering_vector(smollm2, POSITIVE, NEGATIVE, layer=4)
    assert panel.steered == hooked_generation(smollm2, vector, [4, 12], panel.coefficient)
    front_end_sets(panel, layers=[])
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
