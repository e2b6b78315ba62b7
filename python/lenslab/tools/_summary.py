"""How results print and display: a few lines that say what was found (shape, top tokens, best
patch) instead of whole tensors, and their plot in a notebook."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..records.export import NEUTRAL_LAYOUT, themed

__all__ = ["NEUTRAL_LAYOUT", "themed"]


def top_list(pairs: Iterable[tuple[str, float]]) -> str:
    return "  ".join(f"{token!r} {p:.3f}" for token, p in pairs)


def best_cells(scores: dict[str, torch.Tensor], label: Callable[[int], str]) -> list[str]:
    """One line per component: the (layer, position) with the highest score."""
    lines = []
    for name, grid in scores.items():
        flat = int(grid.argmax())
        layer, column = divmod(flat, grid.shape[1])
        lines.append(
            f"  best {name}: layer {layer}, {label(column)}: {float(grid[layer, column]):.3f}"
        )
    return lines


def shape_of(scores: dict[str, torch.Tensor]) -> str:
    layers, columns = next(iter(scores.values())).shape
    return f"{', '.join(scores)} x {layers} layers x {columns} positions"


def short(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def mimebundle(
    text: str, figure: Callable[[], Any] | None, include: Any = None, exclude: Any = None
) -> dict[str, Any]:
    """The summary as text/plain, and the plot (theme-neutral) as plotly's own mimetype, which
    JupyterLab, Notebook 7 and VS Code draw natively; nothing but the text without plotly."""
    data: dict[str, Any] = {"text/plain": text}
    if figure is None:
        return data
    try:
        import plotly.io as pio

        shown = figure()
    except ImportError:  # plotly not installed: the summary alone
        return data
    shown.update_layout(**NEUTRAL_LAYOUT)
    data.update(pio.renderers["plotly_mimetype"].to_mimebundle(shown.to_dict()))
    if include is not None:
        data = {k: v for k, v in data.items() if k in include}
    if exclude is not None:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data
