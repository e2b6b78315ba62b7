"""Static HTML for records: what an exported notebook shows without the widget front end."""

from __future__ import annotations

import html
import math

from ..records import Grid, ModuleNode

_STYLE = "font: 12px/1.4 system-ui, sans-serif; border-collapse: collapse"


# The light-theme palettes of js/widgets/shared/colors.ts (a static copy has no theme to follow).
_STOPS = {
    "blues": ((247, 251, 255), (107, 174, 214), (8, 48, 107)),
    "diverging": ((178, 24, 43), (247, 247, 247), (33, 102, 172)),
}


def color_at(x: float, palette: str) -> str:
    stops = _STOPS.get(palette, _STOPS["blues"])
    at = x * (len(stops) - 1)
    i = min(len(stops) - 2, math.floor(at))
    t = at - i
    r, g, b = (round(a + (z - a) * t) for a, z in zip(stops[i], stops[i + 1]))
    return f"rgb({r},{g},{b})"


def cell_color(grid: Grid, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "#e8e8e8"
    return color_at(grid.fraction(value), grid.colors)


def render_legend(grid: Grid) -> str:
    """A colour bar with its ends (and 0 when diverging) labelled."""
    low, high = grid.bounds()
    stops = ", ".join(color_at(i / 8, grid.colors) for i in range(9))
    middle = "0" if grid.colors == "diverging" else ""
    kind = "" if grid.scale == "linear" or grid.colors == "diverging" else f" ({grid.scale} scale)"
    return (
        f"<div style='font:11px system-ui;margin:2px 0'>{html.escape(grid.legend)}{kind} "
        f"{low:.3g} <span style='display:inline-block;width:140px;height:9px;vertical-align:middle;"
        f"background:linear-gradient(to right, {stops})'></span> {high:.3g}"
        f"{' (0 in the middle)' if middle else ''}</div>"
    )


def render_grid(grid: Grid) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in grid.cols)
    body = []
    for r, label in enumerate(grid.rows):
        cells = []
        for c, value in enumerate(grid.values[r]):
            text = grid.text[r][c] if grid.text else ("" if value is None else f"{value:.2f}")
            tip = grid.hover[r][c] if grid.hover else text
            color = cell_color(grid, value)
            cells.append(
                f'<td title="{html.escape(tip)}" style="background:{color};padding:2px 4px">'
                f"{html.escape(text)}</td>"
            )
        body.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    return (
        f"<div><b>{html.escape(grid.title)}</b>{render_legend(grid)}<table style='{_STYLE}'>"
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
