"""Colour scales: signed values diverge around 0, magnitudes can be log or robust, and
activation_norms picks a scale on which positions after the first still differ."""

from __future__ import annotations

import pytest

from lenslab.errors import LensError
from lenslab.records import Grid
from lenslab.widgets import Heatmap, PatchingGrid, activation_norms, live_logit_lens

PROMPT = "The Eiffel Tower is located in the city of"


def grid(values, **kwargs) -> Grid:
    return Grid("t", ["r"] * len(values), ["c"] * len(values[0]), values, **kwargs)


def test_signed_values_are_centred_on_zero():
    skewed = grid([[-0.2, 1.0], [0.5, None]], colors="diverging")
    assert skewed.bounds() == (-1.0, 1.0)
    assert skewed.fraction(0.0) == 0.5  # white / neutral, whatever the data's skew
    assert skewed.fraction(-0.2) < 0.5 < skewed.fraction(0.5)


def test_log_and_robust_scales_for_magnitudes():
    log = grid([[1.0, 10.0, 100.0]], scale="log")
    assert log.fraction(10.0) == pytest.approx(0.5)
    values = [[float(v) for v in range(1, 100)] + [10_000.0]]
    robust, linear = grid(values, scale="robust"), grid(values)
    assert robust.bounds()[1] < 200  # the outlier does not set the range...
    assert robust.fraction(10_000.0) == 1.0  # ...it is drawn at the end
    assert robust.fraction(50.0) == pytest.approx(0.5, abs=0.02)
    assert linear.fraction(50.0) < 0.01


def spread_after_first(record: Grid) -> float:
    shades = [record.fraction(v) for row in record.values for v in row[1:]]
    return max(shades) - min(shades)


def test_activation_norms_shows_structure_beyond_position_0(smollm2):
    plot = activation_norms(smollm2, PROMPT, display=False)
    assert (plot.scale, plot.legend) == ("log", "L2 norm")
    array = plot.array
    assert array[:, 0].max() > 10 * array[:, 1:].max()  # position 0 dwarfs the rest...
    assert spread_after_first(plot.record()) > 0.4  # ...yet the rest spans the colours
    plot.scale = "linear"
    assert spread_after_first(plot.record()) < 0.2  # a linear scale washes them out


def test_every_heatmap_names_its_colours(smollm2):
    lens = live_logit_lens(smollm2, PROMPT, display=False)
    assert (lens.legend, lens.zmin, lens.zmax) == ("top-1 probability", 0.0, 1.0)
    patching = PatchingGrid(
        smollm2,
        "When John and Mary went to the shops, John gave the bag to",
        "When John and Mary went to the shops, Mary gave the bag to",
        " Mary",
        " John",
    )
    assert patching.colors == "diverging" and patching.legend.startswith("score")
    html = patching.to_html()
    assert "linear-gradient" in html and "score (1 = clean restored" in html


def test_unknown_palettes_and_scales_are_refused():
    with pytest.raises(LensError, match=r"colors must be one of \['blues', 'diverging'\]"):
        Heatmap(rows=["a"], cols=["b"], colors="Blues")
    with pytest.raises(LensError, match="scale must be one of"):
        Heatmap(rows=["a"], cols=["b"], scale="sqrt")
