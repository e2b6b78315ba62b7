"""Messages between a widget's kernel side and its front end (mirrored in js/widgets/shared).

Every request from the front end carries an ``id``; the kernel answers with a Reply of that id,
so the front end can time out and show an error instead of waiting forever.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class Request(TypedDict, total=False):
    kind: str  # "patch", "sweep", ...: handled by the widget's handle_<kind> method
    id: int
    layer: int
    position: int
    batch_size: int  # "sweep": patches per forward pass (default: one layer's positions)


class Reply(TypedDict):
    kind: Literal["reply"]
    id: int
    ok: bool
    error: str
