"""Static fallbacks: an exported notebook (nbconvert, no widget state) shows each widget's HTML
copy of its state instead of an empty widget placeholder."""

from __future__ import annotations

import nbformat
import pytest
from nbconvert import HTMLExporter

from lenslab.widgets import Heatmap, LayerPicker, ModuleTree, StepPlot

PROMPT = "The Eiffel Tower is located in the city of"


def exported(*displays: object) -> str:
    """HTML of a notebook whose cells displayed ``displays`` (as the kernel would send them)."""
    cells = []
    for shown in displays:
        bundle = shown._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        cell = nbformat.v4.new_code_cell("shown")
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        cells.append(cell)
    body, _ = HTMLExporter().from_notebook_node(nbformat.v4.new_notebook(cells=cells))
    return body


@pytest.fixture(scope="module")
def page(smollm2):
    tree = ModuleTree(smollm2)
    tree.selected = "model.model.layers[5].mlp"
    plot = Heatmap(rows=["layer 0", "layer 1"], cols=["a", "b"], title="norms")
    plot.set_row(1, [0.25, 0.75], text=["x", "Paris"])
    steps = StepPlot(["p"])
    steps.append(0, p=0.5)
    steps.append(1, p=0.125)
    return exported(tree, plot, LayerPicker(smollm2, PROMPT, layers=[4, 5]), steps)


def test_an_exported_notebook_shows_each_widgets_state(page):
    assert "model.model.layers[5].mlp.output" in page and "LlamaMLP" in page  # the tree
    assert "norms" in page and ">Paris<" in page  # the heatmap, with its cell text
    assert "layers [4, 5], component <b>resid</b>" in page  # the picker
    assert "0.125" in page  # the step values
