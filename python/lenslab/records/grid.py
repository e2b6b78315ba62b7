"""A labelled 2-D grid of numbers (layers x tokens, say), with optional cell text and hover."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Grid:
    """``values[r][c]`` is a float or ``None`` (not computed yet).

    ``colors`` names the scale: ``"blues"`` (zmin..zmax) or ``"diverging"`` (centred on 0).
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

    def bounds(self) -> tuple[float, float]:
        """The colour range: zmin/zmax where given, else the data's own."""
        known = [v for row in self.values for v in row if v is not None and math.isfinite(v)]
        low = self.zmin if self.zmin is not None else min(known, default=0.0)
        high = self.zmax if self.zmax is not None else max(known, default=1.0)
        if self.colors == "diverging":
            edge = max(abs(low), abs(high)) or 1.0
            return -edge, edge
        return low, high if high > low else low + 1.0

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
        }
