"""A labelled 2-D grid of numbers (layers x tokens, say), with optional cell text and hover."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PALETTES = ("blues", "diverging")
SCALES = ("linear", "log", "robust")


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
