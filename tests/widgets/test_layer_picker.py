"""LayerPicker: the model's own tokens, front-end choices, and a value that plugs into traces
and the toolkit."""

from __future__ import annotations

import pytest
import torch

from lenslab import steer
from lenslab.widgets import LayerPicker

from ..conftest import hooked
from .conftest import front_end_sets

PROMPT = "The Eiffel Tower is located in the city of"


@pytest.fixture
def picker(smollm2):
    return LayerPicker(smollm2, PROMPT)


def test_tokens_are_the_models_and_defaults_are_sane(picker, smollm2):
    ids = smollm2.tokenizer(PROMPT)["input_ids"]
    assert picker.tokens == [smollm2.tokenizer.decode(i) for i in ids]
    assert picker.num_layers == 30
    assert picker.value.layers == (15,) and picker.value.positions == (len(ids) - 1,)


def test_front_end_choices_read_the_same_values_as_plain_hooks(picker, smollm2):
    front_end_sets(picker, layers=[3, 7], component="mlp", positions=[-1, 2])
    selection = picker.value
    assert selection.layers == (3, 7) and selection.positions == (2, 9)
    assert selection.component == "mlp"
    with smollm2.trace(PROMPT):
        got = {layer: v.save() for layer, v in selection.read(smollm2).items()}
    layers = smollm2._model.model.layers
    with hooked({i: layers[i].mlp for i in (3, 7)}) as seen, torch.no_grad():
        smollm2._model(**smollm2.tokenizer(PROMPT, return_tensors="pt"))
    for layer in (3, 7):
        torch.testing.assert_close(got[layer], seen[layer][:, [2, 9]])


def test_bad_choices_are_refused(picker):
    with pytest.raises(Exception, match="out of range"):
        picker.layers = [30]
    with pytest.raises(Exception, match="component must be one of"):
        picker.component = "embed"
    assert picker.layers == [15]


def test_value_plugs_into_the_toolkit(picker, smollm2):
    front_end_sets(picker, layers=[6], positions=[-1])
    vector = torch.randn(576, generator=torch.Generator().manual_seed(0))
    via_picker = steer(smollm2, PROMPT, vector, coefficient=3, **picker.value.steer_kwargs())
    direct = steer(smollm2, PROMPT, vector, layers=[6], coefficient=3, positions=[9])
    torch.testing.assert_close(via_picker.steered, direct.steered)
    assert not torch.allclose(via_picker.steered, via_picker.baseline)
    assert "positions [9]" in picker.to_html()
