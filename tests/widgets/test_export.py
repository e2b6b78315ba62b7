"""Data out of every widget: records and arrays equal to a plain trace, plotly figures whose
hover names row, column and value, and SVG / PNG pictures written without a browser."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest
import torch

from lenslab.errors import LensError
from lenslab.widgets import LayerPicker, ModuleTree, StepPlot, activation_norms

from .test_live_plots import PROMPT, layer_outputs


@pytest.fixture(scope="module")
def norms(smollm2):
    return activation_norms(smollm2, PROMPT, display=False)


def test_heatmap_records_and_array_equal_the_hooked_norms(norms, smollm2):
    expected = torch.stack([h.norm(dim=-1) for h in layer_outputs(smollm2, PROMPT)]).numpy()
    np.testing.assert_allclose(norms.to_numpy(), expected, rtol=1e-4)
    rows = norms.to_records()
    assert len(rows) == expected.size
    for row in rows[::37]:
        assert row["row_label"] == f"layer {row['row']}"
        assert row["col_label"] == norms.cols[row["col"]]
        assert row["value"] == pytest.approx(float(expected[row["row"], row["col"]]), rel=1e-4)


def test_heatmap_figure_has_the_values_and_a_hover_naming_row_column_value(norms):
    figure = norms.figure(theme="dark")
    (trace,) = figure.data
    np.testing.assert_allclose(np.array(trace.z), norms.to_numpy(), rtol=1e-6)
    assert list(trace.y) == norms.rows and list(trace.x) == norms.cols
    assert trace.hovertemplate.startswith("%{y}, %{x}: %{z")
    assert trace.colorbar.title.text == "L2 norm"


def test_heatmap_saves_svg_and_png(norms, tmp_path):
    svg = norms.save(tmp_path / "norms.svg")
    root = ET.fromstring(svg.read_text())
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert len(titles) == 30 * len(norms.cols)
    value = float(norms.to_numpy()[0, 1])
    assert titles[1] == f"layer 0, {norms.cols[1]}: {value:.4g}"
    png = norms.save(tmp_path / "norms.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (len(norms.cols) * 8, 30 * 8)
    start = png.index(b"IDAT") + 4
    length = struct.unpack(">I", png[start - 8 : start - 4])[0]
    raw = zlib.decompress(png[start : start + length])
    assert len(raw) == height * (1 + 3 * width)
    html = norms.save(tmp_path / "norms.html").read_text()
    assert "<table" in html
    with pytest.raises(LensError, match=r"must end in .svg, .png or .html, got '.jpg'"):
        norms.save(tmp_path / "norms.jpg")
    assert "must end in .svg, .png or .html" in norms.error  # shown in the widget too
    norms.error = ""
    with pytest.raises(LensError, match="theme must be one of"):
        norms.figure(theme="sepia")


def test_step_plot_records_and_array():
    plot = StepPlot(["p", "entropy"])
    plot.append(0, token=" Paris", p=0.5, entropy=2.0)
    plot.append(1, token=",", p=0.25, entropy=3.0)
    assert plot.to_records() == [
        {"step": 0, "token": " Paris", "p": 0.5, "entropy": 2.0},
        {"step": 1, "token": ",", "p": 0.25, "entropy": 3.0},
    ]
    np.testing.assert_array_equal(plot.to_numpy(), [[0.5, 2.0], [0.25, 3.0]])
    assert len(plot.static_figure(theme="light").data) == 2


def test_module_tree_and_layer_picker_give_their_data(smollm2):
    tree = ModuleTree(smollm2)
    rows = tree.to_records()
    by_path = {r["path"]: r for r in rows}
    total = sum(p.numel() for p in smollm2._model.parameters())
    assert rows[0]["parent"] == "" and rows[0]["parameters"] == total
    mlp = by_path["model.model.layers[5].mlp"]
    assert mlp["parameters"] == sum(
        p.numel() for p in smollm2._model.model.layers[5].mlp.parameters()
    )
    assert mlp["parent"] == "model.model.layers[5]"
    (treemap,) = tree.figure().data
    assert len(treemap.ids) == len(rows) and "parameters" in treemap.hovertemplate
    picker = LayerPicker(smollm2, PROMPT, layers=[3, 7], positions=[-1, 2])
    chosen = picker.to_numpy()
    assert chosen.shape == (30, len(picker.tokens)) and chosen.sum() == 4
    assert chosen[3, 2] == chosen[7, len(picker.tokens) - 1] == 1
    assert {(r["layer"], r["token"]) for r in picker.to_records()} >= {(3, picker.tokens[2])}
    assert "%{y}, %{x}: %{z}" in picker.figure().data[0].hovertemplate
