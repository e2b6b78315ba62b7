"""Shared plotting for the tools (plotly is imported only when a plot is asked for)."""

from __future__ import annotations

from typing import Any

import torch

from ._summary import themed
from .prompts import Tokens


def heatmaps(
    scores: dict[str, torch.Tensor],
    columns: list[str],
    title: str,
    tokens: Tokens,
    theme: str | None = "auto",
) -> Any:
    """One layers x positions heatmap per component, on a shared diverging color scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(scores)
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True)
    for i, name in enumerate(names, start=1):
        figure.add_trace(
            go.Heatmap(
                z=scores[name].tolist(),
                x=columns,
                y=[f"layer {layer}" for layer in range(scores[name].shape[0])],
                colorscale="RdBu",
                zmid=0,
                showscale=i == len(names),
                hovertemplate="%{y}, %{x}: %{z:.3f}<extra>" + name + "</extra>",
            ),
            row=1,
            col=i,
        )
    figure.update_layout(
        title=f"{title} ({tokens.describe()})",
        height=max(400, 14 * next(iter(scores.values())).shape[0]),
    )
    return themed(figure, theme)


def score_records(
    scores: dict[str, torch.Tensor], positions: list[int], tokens: list[str]
) -> list[dict[str, Any]]:
    """One dict per (component, layer, position): ``score`` and the position's ``token``."""
    return [
        {"component": name, "layer": layer, "position": position, "token": token,
         "score": float(value)}
        for name, grid in scores.items()
        for layer, row in enumerate(grid.tolist())
        for position, token, value in zip(positions, tokens, row)
    ]  # fmt: skip


SCORE_COLUMNS = ["component", "layer", "position", "token", "score"]
