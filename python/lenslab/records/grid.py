"""A labelled 2-D grid of numbers (layers x tokens, say), with optional cell text and hover."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PALETTES = ("blues", "diverging")
SCALES = ("linear", "log", "robust")

# The light-theme palettes of js/widgets/shared/colors.ts (a picture has no theme to follow).
STOPS = {
    "blues": ((247, 251, 255), (107, 174, 214), (8, 48, 107)),
    "diverging": ((178, 24, 43), (247, 247, 247), (33, 102, 172)),
}
NOT_COMPUTED = (232, 232, 232)


def rgb_at(x: float, palette: str) -> tuple[int, int, int]:
    """The colour at ``x`` (0-1) of ``palette``."""
    stops = STOPS.get(palette, STOPS["blues"])
    at = min(1.0, max(0.0, x)) * (len(stops) - 1)
    i = min(len(stops) - 2, math.floor(at))
    t = at - i
    r, g, b = (round(a + (z - a) * t) for a, z in zip(stops[i], stops[i + 1]))
    return r, g, b


def _quantile(ordered: list[float], q: float) -> float:
    at = (len(ordered) - 1) * q
    below = math.floor(at)
    above = min(len(ordered) - 1, below + 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (at - below)


@dataclass(frozen=True)
class Grid:
    """``values[r][c]`` is a float or ``None`` (not computed yet).

    ``colors`` names the palette: ``"blues"`` for magnitudes, ``"diverging"`` for signed values
    (centred on 0). ``scale`` maps values to colours: ``"linear"``, ``"log"`` (magnitudes that
    span decades, such as activation norms) or ``"robust"`` (the 2nd-98th percentile range, so
    a few outliers do not wash out the rest). ``legend`` says what the colours measure.
    The same rules run in the front end (js/widgets/shared/colors.ts).
    """

    title: str
    rows: list[str]
    cols: list[str]
    values: list[list[float | None]]
    text: list[list[str]] = field(default_factory=list)
    hover: list[list[str]] = field(default_factory=list)
    zmin: float | None = None
    zmax: float | None = None
    colors: str = "blues"
    scale: str = "linear"
    legend: str = ""

    def bounds(self) -> tuple[float, float]:
        """The colour range: zmin/zmax where given, else from the data, as the scale says."""
        known = sorted(
            v
            for row in self.values
            for v in row
            if v is not None and math.isfinite(v) and (self.scale != "log" or v > 0)
        )
        low, high = (known[0], known[-1]) if known else (0.0, 1.0)
        if self.scale == "robust" and known:
            if self.colors == "diverging":
                high = _quantile(sorted(abs(v) for v in known), 0.98)
                low = -high
            else:
                low, high = _quantile(known, 0.02), _quantile(known, 0.98)
        low = self.zmin if self.zmin is not None else low
        high = self.zmax if self.zmax is not None else high
        if self.colors == "diverging":
            edge = max(abs(low), abs(high)) or 1.0
            return -edge, edge
        if self.scale == "log":
            low = low if low > 0 else 1e-6
            return low, high if high > low else low * 10
        return low, high if high > low else low + 1.0

    def fraction(self, value: float) -> float:
        """Where ``value`` falls on the colour scale, 0 to 1 (clamped)."""
        low, high = self.bounds()
        if self.scale == "log" and self.colors != "diverging":
            span = math.log(high) - math.log(low) or 1.0
            x = (math.log(max(value, low)) - math.log(low)) / span
        else:
            x = (value - low) / ((high - low) or 1.0)
        return min(1.0, max(0.0, x))

    def rgb(self, value: float | None) -> tuple[int, int, int]:
        """The colour of a cell holding ``value`` (grey where not computed)."""
        if value is None or not math.isfinite(value):
            return NOT_COMPUTED
        return rgb_at(self.fraction(value), self.colors)

    def to_numpy(self) -> Any:
        """The values as a float array, NaN where not computed."""
        import numpy as np

        return np.array(
            [[math.nan if v is None else v for v in row] for row in self.values], dtype=float
        ).reshape(len(self.rows), len(self.cols))

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per cell: row and column index and label, value, and cell text."""
        return [
            {
                "row": r,
                "row_label": self.rows[r],
                "col": c,
                "col_label": self.cols[c],
                "value": value,
                "text": self.text[r][c] if self.text else "",
            }
            for r in range(len(self.rows))
            for c, value in enumerate(self.values[r])
        ]

    def to_dataframe(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas must be installed)."""
        from .export import dataframe

        return dataframe(
            self.to_records(), ["row", "row_label", "col", "col_label", "value", "text"]
        )

    def figure(self, theme: str | None = "auto") -> Any:
        """A plotly heatmap of the grid: same colours and range, hover naming row, column and
        value (and the cell's hover text)."""
        import plotly.graph_objects as go

        from .export import themed

        low, high = self.bounds()
        scale = [[i / 8, "rgb({},{},{})".format(*rgb_at(i / 8, self.colors))] for i in range(9)]
        extra = self.hover or self.text
        trace = go.Heatmap(
            z=self.to_numpy().tolist(),
            x=self.cols,
            y=self.rows,
            zmin=low,
            zmax=high,
            colorscale=scale,
            colorbar={"title": {"text": self.legend}},
            customdata=[[h.replace("\n", "<br>") for h in row] for row in extra] if extra else None,
            hovertemplate="%{y}, %{x}: %{z:.4g}"
            + ("<br>%{customdata}" if extra else "")
            + "<extra></extra>",
        )
        figure = go.Figure(trace)
        figure.update_layout(
            title=self.title, yaxis={"autorange": "reversed"}, height=max(320, 18 * len(self.rows))
        )
        return themed(figure, theme)

    def to_svg(self) -> str:
        from .export import grid_svg

        return grid_svg(self)

    def to_png(self, cell: int = 8) -> bytes:
        from .export import grid_png

        return grid_png(self, cell)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": self.rows,
            "cols": self.cols,
            "values": self.values,
            "text": self.text,
            "hover": self.hover,
            "zmin": self.zmin,
            "zmax": self.zmax,
            "colors": self.colors,
            "scale": self.scale,
            "legend": self.legend,
        }
