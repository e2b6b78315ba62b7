"""Bad input to a widget: a LensError naming the mistake and the fix, raised before anything is
displayed (no empty plot left behind), and shown in the widget where it has an error line."""

from __future__ import annotations

import pytest
import torch

from lenslab import NNsight
from lenslab.errors import LensError
from lenslab.widgets import (
    Heatmap,
    LayerPicker,
    ModuleTree,
    PatchingGrid,
    SteeringPanel,
    StepPlot,
    activation_norms,
    generation_plot,
    live,
    live_logit_lens,
)

PROMPT = "The Eiffel Tower is located in the city of"
CLEAN = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED = "When John and Mary went to the shops, Mary gave the bag to"


@pytest.fixture
def shown(monkeypatch):
    """What the live helpers displayed (they display before computing)."""
    widgets: list = []
    monkeypatch.setattr(live, "show", widgets.append)
    return widgets


def test_live_logit_lens_refuses_an_empty_prompt(smollm2, shown):
    with pytest.raises(LensError, match=r"empty prompt.*pass the text"):
        live_logit_lens(smollm2, "")
    with pytest.raises(LensError, match="top_k must be a whole number >= 1"):
        live_logit_lens(smollm2, PROMPT, top_k=0)
    assert shown == []


def test_generation_plot_refuses_zero_new_tokens(smollm2, shown):
    with pytest.raises(LensError, match=r"max_new_tokens must be a whole number >= 1, got 0"):
        generation_plot(smollm2, PROMPT, max_new_tokens=0)
    with pytest.raises(LensError, match="empty prompt"):
        generation_plot(smollm2, "")
    assert shown == []


def test_activation_norms_refuses_a_bad_component_or_prompt(smollm2, shown):
    with pytest.raises(LensError, match=r"component must be one of \['attn', 'mlp', 'resid'\]"):
        activation_norms(smollm2, PROMPT, component="embed")
    with pytest.raises(LensError, match="takes the prompt as a string"):
        activation_norms(smollm2, ["a list"])
    assert shown == []


def test_a_plot_that_fails_while_filling_is_closed(smollm2, shown, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the forward failed")

    monkeypatch.setattr(smollm2, "trace", broken)
    with pytest.raises(RuntimeError, match="forward failed"):
        activation_norms(smollm2, PROMPT)
    [plot] = shown
    assert plot.comm is None  # closed: its view is removed from the output


def test_steering_panel_refuses_an_empty_prompt(smollm2):
    with pytest.raises(LensError, match=r"SteeringPanel got an empty prompt"):
        SteeringPanel(smollm2, "", positive=["I love you"], negative=["I hate you"])
    with pytest.raises(LensError, match="either positive and negative prompt sets"):
        SteeringPanel(smollm2, PROMPT, positive=["I love you"])
    with pytest.raises(LensError, match="positive must be a non-empty list"):
        SteeringPanel(smollm2, PROMPT, positive="I love you", negative=["I hate you"])
    with pytest.raises(LensError, match="low < high"):
        SteeringPanel(smollm2, PROMPT, vector=torch.zeros(576), coefficient_range=(5, -5))
    with pytest.raises(LensError, match="max_new_tokens must be"):
        SteeringPanel(smollm2, PROMPT, vector=torch.zeros(576), max_new_tokens=0)


def test_steering_panel_shows_and_raises_a_bad_change(smollm2):
    panel = SteeringPanel(smollm2, "I think", vector=torch.zeros(576), max_new_tokens=2)
    with pytest.raises(LensError, match="empty prompt"):
        panel.prompt = ""
    assert "empty prompt" in panel.error  # the panel's error line says it too
    assert panel.prompt == "I think"
    with pytest.raises(LensError, match=r"layers \[40\] out of range: use layers 0 to 29"):
        panel.layers = [40]


def test_layer_picker_refuses_an_empty_prompt(smollm2):
    with pytest.raises(LensError, match="LayerPicker got an empty prompt"):
        LayerPicker(smollm2, "")
    picker = LayerPicker(smollm2, PROMPT)
    with pytest.raises(LensError, match=r"positions \[10\] out of range: there are 10"):
        picker.positions = [10]
    with pytest.raises(LensError, match="layers must be whole numbers"):
        picker.layers = [1.5]


def test_module_tree_on_a_bare_module_asks_for_an_example_input():
    net = NNsight(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))
    hint = r"takes tensors, not text.*ModuleTree\(model, torch.zeros\(1, 4\)\)"
    with pytest.raises(LensError, match=hint):
        ModuleTree(net)
    with pytest.raises(LensError, match="needs a lenslab model, got a bare Linear"):
        ModuleTree(torch.nn.Linear(4, 3))
    with pytest.raises(LensError, match="could not scan the model on an input of shape"):
        ModuleTree(net, torch.zeros(1, 5))
    tree = ModuleTree(net, torch.zeros(1, 4))
    assert tree.root.find("model[0]").output == "(1, 3)"
    with pytest.raises(LensError, match="not a module of this model"):
        tree.selected = "model.layers[0]"


def test_patching_grid_refuses_bad_choices(smollm2):
    with pytest.raises(LensError, match="component must be one of"):
        PatchingGrid(smollm2, CLEAN, CORRUPTED, " Mary", " John", component="embed")
    with pytest.raises(LensError, match="empty prompt"):
        PatchingGrid(smollm2, "", CORRUPTED, " Mary", " John")
    with pytest.raises(LensError, match="same number of tokens"):
        PatchingGrid(smollm2, CLEAN, "Mary", " Mary", " John")


def test_heatmap_and_step_plot_refuse_misshapen_values():
    plot = Heatmap(rows=["a", "b"], cols=["x", "y", "z"])
    with pytest.raises(LensError, match="values has 2 entries, the heatmap has 3 columns"):
        plot.set_row(0, [1.0, 2.0])
    with pytest.raises(LensError, match="row 5 is outside the heatmap"):
        plot.set_row(5, [1.0, 2.0, 3.0])
    with pytest.raises(LensError, match=r"shape \(4,\), the heatmap is \(2, 3\)"):
        plot.set_all([1, 2, 3, 4])
    steps = StepPlot(["p"])
    with pytest.raises(LensError, match=r"no series \['q'\]"):
        steps.append(0, q=1.0)
    with pytest.raises(LensError, match=r"no series 'q'"):
        steps.values("q")
    with pytest.raises(LensError, match="distinct series names"):
        StepPlot(["p", "p"])
