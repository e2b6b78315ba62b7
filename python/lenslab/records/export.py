"""Getting results out: long-format rows, data frames, plotly figures in the notebook's theme,
and SVG / PNG pictures of a grid (written here, so no browser or image library is needed).

Example:
    >>> rows = grid.to_records()            # [{"row": "layer 0", "col": "0: 'The'", ...}, ...]
    >>> frame = dataframe(rows)             # pandas, if installed
    >>> themed(figure, "dark")              # plotly's dark template, transparent background
"""

from __future__ import annotations

import html
import struct
import zlib
from typing import TYPE_CHECKING, Any

from .grid import rgb_at

if TYPE_CHECKING:
    from .grid import Grid

THEMES = ("auto", "light", "dark")

# "auto": transparent backgrounds and grey text read on JupyterLab's light and dark themes
# alike (a figure cannot see the page's theme); "light" / "dark": plotly's own templates.
NEUTRAL_LAYOUT: dict[str, Any] = {
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(128,128,128,0.06)",
    "font": {"color": "#808080"},
    "xaxis": {"gridcolor": "rgba(128,128,128,0.25)", "zerolinecolor": "rgba(128,128,128,0.4)"},
    "yaxis": {"gridcolor": "rgba(128,128,128,0.25)", "zerolinecolor": "rgba(128,128,128,0.4)"},
}
_TEMPLATES = {"light": "plotly_white", "dark": "plotly_dark"}


def themed(figure: Any, theme: str | None = "auto") -> Any:
    """``figure`` laid out for ``theme``: "auto" (readable on light and dark), "light" or
    "dark" (plotly's templates, the page's background showing through in dark)."""
    from ..errors import InputError

    theme = theme or "auto"
    if theme not in THEMES:
        raise InputError(f"theme must be one of {list(THEMES)}, got {theme!r}.")
    if theme == "auto":
        figure.update_layout(**NEUTRAL_LAYOUT)
    else:
        figure.update_layout(template=_TEMPLATES[theme])
        if theme == "dark":
            figure.update_layout(paper_bgcolor="rgba(0,0,0,0)")
    return figure


def dataframe(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """A pandas DataFrame of ``rows`` (long format, one row per value)."""
    from ..errors import LensError

    try:
        import pandas
    except ImportError:
        raise LensError(
            "to_dataframe() needs pandas, which is not installed: pip install pandas (or use "
            ".to_records() for the same rows as dicts, .to_numpy() for the array)."
        ) from None
    return pandas.DataFrame(rows, columns=columns)


# -- pictures of a grid ---------------------------------------------------------------------------

CELL_W, CELL_H, LEFT, TOP = 34, 16, 90, 96


def grid_svg(grid: Grid) -> str:
    """A standalone SVG of ``grid``: title, colour legend, labels, cells (with hover titles)."""
    rows, cols = len(grid.rows), len(grid.cols)
    width, height = LEFT + CELL_W * cols + 20, TOP + CELL_H * rows + 10
    low, high = grid.bounds()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="system-ui, sans-serif" font-size="10">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="4" y="14" font-size="12" font-weight="600">{_x(grid.title)}</text>',
    ]
    for i in range(40):  # the colour bar
        r, g, b = rgb_at(i / 39, grid.colors)
        parts.append(
            f'<rect x="{LEFT + i * 4}" y="22" width="4" height="8" fill="rgb({r},{g},{b})"/>'
        )
    parts.append(
        f'<text x="4" y="30">{_x(grid.legend or "value")}</text>'
        f'<text x="{LEFT + 164}" y="30">{low:.3g} … {high:.3g}'
        f"{' (log scale)' if grid.scale == 'log' and grid.colors != 'diverging' else ''}</text>"
    )
    for c, label in enumerate(grid.cols):
        x = LEFT + c * CELL_W + CELL_W / 2
        parts.append(
            f'<text transform="translate({x},{TOP - 4}) rotate(-45)">{_x(_short(label))}</text>'
        )
    for r, label in enumerate(grid.rows):
        y = TOP + r * CELL_H
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 12}" text-anchor="end">{_x(_short(label))}</text>'
        )
        for c, value in enumerate(grid.values[r]):
            red, green, blue = grid.rgb(value)
            shown = "not computed" if value is None else f"{value:.4g}"
            text = grid.text[r][c] if grid.text else ""
            parts.append(
                f'<rect x="{LEFT + c * CELL_W}" y="{y}" width="{CELL_W - 1}" height="{CELL_H - 1}" '
                f'fill="rgb({red},{green},{blue})"><title>{_x(label)}, {_x(grid.cols[c])}: '
                f"{shown}</title></rect>"
            )
            if text:
                parts.append(
                    f'<text x="{LEFT + c * CELL_W + CELL_W / 2}" y="{y + 12}" '
                    f'text-anchor="middle" font-size="9">{_x(_short(text, 6))}</text>'
                )
    parts.append("</svg>")
    return "\n".join(parts)


def grid_png(grid: Grid, cell: int = 8) -> bytes:
    """A PNG of ``grid``'s cells (``cell`` pixels each; no labels: see ``grid_svg``)."""
    from ..errors import InputError

    if not 1 <= cell <= 64:
        raise InputError(f"cell must be 1 to 64 pixels, got {cell!r}.")
    rows, cols = len(grid.rows), len(grid.cols)
    colors = [[bytes(grid.rgb(v)) for v in row] for row in grid.values]
    raw = bytearray()
    for r in range(rows):
        line = b"\x00" + b"".join(colors[r][c] * cell for c in range(cols))
        raw += line * cell
    return _png(cols * cell, rows * cell, bytes(raw))


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _x(text: str) -> str:
    return html.escape(text, quote=True)


def _short(text: str, width: int = 16) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
