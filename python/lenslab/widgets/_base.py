"""What every lenslab widget shares: its bundled front end, requests with replies, and a
static HTML copy of its state for exported or re-opened notebooks."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from ..errors import LensError
from ._protocol import Reply, Request

STATIC = Path(__file__).parent / "static"

# Shown when the TypeScript bundle was not built (a source checkout without `npm run build`).
_UNBUILT = """
export default { render({ model, el }) {
  el.textContent = "[lenslab] widget front end not built: run `npm run build:widgets`.";
} };
"""


def bundle(name: str) -> Path | str:
    """The built ``static/<name>.js`` (esbuild output of ``js/widgets/<name>/index.ts``)."""
    path = STATIC / f"{name}.js"
    return path if path.is_file() else _UNBUILT


def to_bytes(values: Any) -> bytes:
    """Float32 little-endian bytes of an array or tensor: sent as one binary buffer."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch
        values = values.detach().float().cpu().numpy()
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def from_bytes(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").reshape(shape).copy()


class Refused(LensError):
    """A request the widget turns down for now (a click while a sweep runs): the reply says so,
    the widget's error line is left alone."""


class LensWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """Base: ``busy`` / ``error`` traits, ``handle_<kind>`` requests, and ``to_html()``."""

    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._receive)

    def to_html(self) -> str:
        """A static picture of the current state (no JavaScript needed)."""
        return f"<pre>{html.escape(repr(self))}</pre>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        data["text/html"] = self.to_html()
        return data, metadata

    def _receive(self, _widget: Any, content: Request, _buffers: list[bytes]) -> None:
        """Route a front-end request to ``handle_<kind>`` and always answer it."""
        kind = content.get("kind", "")
        handler = getattr(self, f"handle_{kind}", None)
        reply: Reply = {"kind": "reply", "id": int(content.get("id", -1)), "ok": True, "error": ""}
        if handler is None:
            reply.update(ok=False, error=f"unknown request {kind!r}")
        else:
            try:
                if kind != "cancel":
                    self.error = ""
                handler(content)
            except Refused as problem:
                reply.update(ok=False, error=str(problem))
            except Exception as problem:  # shown in the widget; the kernel keeps running
                self.error = f"{type(problem).__name__}: {problem}"
                reply.update(ok=False, error=self.error)
            finally:
                if self._settled():  # else a background run owns `busy` until it ends
                    self.busy = False
        self.send(reply)

    def _settled(self) -> bool:
        """Whether no background run is going (widgets/_work.py overrides this)."""
        return True
