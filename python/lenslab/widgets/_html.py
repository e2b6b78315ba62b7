"""Static HTML for records: what an exported notebook shows without the widget front end."""

from __future__ import annotations

import html
import math

from ..records import Grid, ModuleNode

_STYLE = "font: 12px/1.4 system-ui, sans-serif; border-collapse: collapse"


def cell_color(value: float | None, low: float, high: float, colors: str) -> str:
    """Same scales as the front end: white to blue, or red / white / blue around 0."""
    if value is None or not math.isfinite(value):
        return "#eeeeee"
    x = min(1.0, max(0.0, (value - low) / (high - low)))
    if colors == "diverging":
        if x < 0.5:
            s = 1 - 2 * x
            return f"rgb(255,{round(255 - 150 * s)},{round(255 - 150 * s)})"
        s = 2 * x - 1
        return f"rgb({round(255 - 190 * s)},{round(255 - 120 * s)},255)"
    return f"rgb({round(255 - 200 * x)},{round(255 - 150 * x)},255)"


def render_grid(grid: Grid) -> str:
    low, high = grid.bounds()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in grid.cols)
    body = []
    for r, label in enumerate(grid.rows):
        cells = []
        for c, value in enumerate(grid.values[r]):
            text = grid.text[r][c] if grid.text else ("" if value is None else f"{value:.2f}")
            tip = grid.hover[r][c] if grid.hover else text
            color = cell_color(value, low, high, grid.colors)
            cells.append(
                f'<td title="{html.escape(tip)}" style="background:{color};padding:2px 4px">'
                f"{html.escape(text)}</td>"
            )
        body.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    return (
        f"<div><b>{html.escape(grid.title)}</b><table style='{_STYLE}'>"
        f"<tr><th></th>{head}</tr>{''.join(body)}</table></div>"
    )


def render_tree(node: ModuleNode, depth: int = 0) -> str:
    label = (
        f"<code>{html.escape(node.name)}</code> {html.escape(node.kind)} "
        f"({node.parameters:,} params){' → ' + html.escape(node.output) if node.output else ''}"
    )
    if not node.children:
        return f"<div style='margin-left:1em'>{label}</div>"
    inner = "".join(render_tree(child, depth + 1) for child in node.children)
    is_open = " open" if depth < 2 else ""
    return f"<details{is_open} style='margin-left:1em'><summary>{label}</summary>{inner}</details>"
