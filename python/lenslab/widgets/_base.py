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

    def to_records(self) -> list[dict[str, Any]]:
        """The widget's data, one dict per row (long format)."""
        raise NotImplementedError

    def to_dataframe(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas must be installed)."""
        from ..records.export import dataframe

        rows = self.to_records()
        return dataframe(rows, list(rows[0]) if rows else [])

    def figure(self, theme: str | None = "auto") -> Any:
        """The widget's data as a plotly figure (``theme``: "auto", "light" or "dark")."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write a picture of the widget: ``.svg`` or ``.png``, or ``.html`` (its static copy).

        Returns the path written.
        """
        target = Path(path)
        kind = target.suffix.lower().lstrip(".")
        if kind not in ("svg", "png", "html"):
            self.error = (
                f"save({str(path)!r}): the file must end in .svg, .png or .html, got "
                f"{target.suffix or 'no suffix'!r}."
            )
            raise LensError(self.error)
        if kind == "html":
            target.write_text(f"<!doctype html><meta charset='utf-8'>{self.to_html()}")
            return target
        picture = self._picture(kind)
        if isinstance(picture, str):
            target.write_text(picture)
        else:
            target.write_bytes(picture)
        return target

    def _picture(self, kind: str) -> str | bytes:
        """SVG text or PNG bytes: the figure through plotly's image export (needs kaleido)."""
        try:
            data: bytes = self.figure(theme="light").to_image(format=kind)
        except (ImportError, ValueError, RuntimeError) as problem:
            raise LensError(
                f"saving {type(self).__name__} as .{kind} goes through plotly's image export, "
                f"which failed ({problem}): pip install kaleido, or save as .html."
            ) from None
        return data.decode() if kind == "svg" else data

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
