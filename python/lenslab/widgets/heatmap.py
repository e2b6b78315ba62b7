"""Heatmap: a live layers x tokens grid drawn on a canvas; rows fill in as values arrive.

Values travel as one float32 binary buffer (NaN = not computed yet). The front end repaints
only the cells that changed, so a trace or sweep can update it row by row while it runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets as t

from ..errors import InputError
from ..records import Grid
from ..records.grid import PALETTES, SCALES
from ._base import LensWidget, bundle, from_bytes, to_bytes
from ._checks import BadValue
from ._html import render_grid


class Heatmap(LensWidget):
    """A grid of ``rows`` x ``cols``; ``set_row`` / ``set_cell`` update it in place.

    ``colors`` ("blues" or "diverging", centred on 0), ``scale`` ("linear", "log" or "robust")
    and ``legend`` (what the colours measure) set the colour bar shown above the grid.

    Examples:
        >>> plot = Heatmap(rows=[f"layer {i}" for i in range(30)], cols=tokens)
        >>> with model.trace(prompt):
        ...     for i in range(30):
        ...         plot.set_row(i, model.layers_output[i][0].norm(dim=-1))
    """

    _esm = bundle("heatmap")
    title = t.Unicode("").tag(sync=True)
    rows = t.List(t.Unicode()).tag(sync=True)
    cols = t.List(t.Unicode()).tag(sync=True)
    values = t.Bytes(b"").tag(sync=True)
    text = t.List(t.List(t.Unicode())).tag(sync=True)
    hover = t.List(t.List(t.Unicode())).tag(sync=True)
    zmin = t.Float(None, allow_none=True).tag(sync=True)
    zmax = t.Float(None, allow_none=True).tag(sync=True)
    colors = t.Unicode("blues").tag(sync=True)  # "diverging": signed, centred on 0
    scale = t.Unicode("linear").tag(sync=True)  # "log" / "robust": see records.Grid
    legend = t.Unicode("").tag(sync=True)  # what the colours measure, over the colour bar
    selected = t.List(t.Int()).tag(sync=True)  # [row, col] of the last clicked cell

    def __init__(self, rows: list[str], cols: list[str], **kwargs: Any) -> None:
        empty = np.full((len(rows), len(cols)), np.nan, dtype="<f4")
        kwargs.setdefault("values", to_bytes(empty))
        super().__init__(rows=list(rows), cols=list(cols), **kwargs)

    @t.validate("colors", "scale")
    def _known_scale(self, proposal: Any) -> str:
        name = proposal["trait"].name
        allowed = PALETTES if name == "colors" else SCALES
        if proposal["value"] not in allowed:
            raise BadValue(f"{name} must be one of {list(allowed)}, got {proposal['value']!r}.")
        return str(proposal["value"])

    @property
    def array(self) -> np.ndarray:
        """The current values, ``(rows, cols)`` float32 (NaN where not computed)."""
        return from_bytes(self.values, (len(self.rows), len(self.cols)))

    def set_row(
        self,
        row: int,
        values: Any,
        text: list[str] | None = None,
        hover: list[str] | None = None,
    ) -> None:
        """Replace row ``row`` (a 1-D array or tensor of ``len(cols)`` values)."""
        array = self.array
        _check_index(row, len(self.rows), "row")
        new = _numpy(values).reshape(-1)
        for name, given in (("values", new), ("text", text), ("hover", hover)):
            if given is not None and len(given) != len(self.cols):
                raise InputError(
                    f"set_row({row}): {name} has {len(given)} entries, the heatmap has "
                    f"{len(self.cols)} columns: give one per column."
                )
        array[row] = new
        with self.hold_sync():
            if text is not None:
                self.text = _replace(self.text, row, text, array.shape)
            if hover is not None:
                self.hover = _replace(self.hover, row, hover, array.shape)
            self.values = to_bytes(array)

    def set_cell(self, row: int, col: int, value: float) -> None:
        _check_index(row, len(self.rows), "row")
        _check_index(col, len(self.cols), "column")
        array = self.array
        array[row, col] = value
        self.values = to_bytes(array)

    def set_all(self, values: Any) -> None:
        array = _numpy(values)
        shape = (len(self.rows), len(self.cols))
        if array.size != shape[0] * shape[1]:
            raise InputError(
                f"set_all: got values of shape {tuple(array.shape)}, the heatmap is {shape} "
                f"(rows x columns): pass one value per cell."
            )
        self.values = to_bytes(array.reshape(shape))

    def record(self) -> Grid:
        values = [[None if np.isnan(v) else float(v) for v in row] for row in self.array]
        return Grid(
            self.title,
            list(self.rows),
            list(self.cols),
            values,
            [list(r) for r in self.text],
            [list(r) for r in self.hover],
            self.zmin,
            self.zmax,
            self.colors,
            self.scale,
            self.legend,
        )

    def to_html(self) -> str:
        return render_grid(self.record())

    def to_numpy(self) -> np.ndarray:
        """The values, ``(rows, cols)`` float32, NaN where not computed."""
        return self.array

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per cell: ``row``, ``row_label``, ``col``, ``col_label``, ``value`` (None
        where not computed) and ``text``."""
        return self.record().to_records()

    def figure(self, theme: str | None = "auto") -> Any:
        """A plotly heatmap with the same colours, range and hover (row, column, value)."""
        return self.record().figure(theme)

    def _picture(self, kind: str) -> str | bytes:
        record = self.record()
        return record.to_svg() if kind == "svg" else record.to_png()


def _numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype="<f4")


def _check_index(index: int, size: int, what: str) -> None:
    if not -size <= index < size:
        raise InputError(f"{what} {index} is outside the heatmap: it has {size} {what}s.")


def _replace(
    table: list[list[str]], row: int, new: list[str], shape: tuple[int, ...]
) -> list[list[str]]:
    """A copy of ``table`` (padded to ``shape`` with empty strings) with one row replaced."""
    rows, cols = shape
    copy = [list(r) for r in table] if table else [[""] * cols for _ in range(rows)]
    copy[row] = list(new)
    return copy
