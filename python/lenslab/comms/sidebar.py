"""What the lab sidebar asks the kernel, answered from read-only snapshots.

``Sidebar`` knows nothing about torch: an ``Inspector`` (given at registration) says what a
model is and describes modules and values. Requests may arrive on a kernel subshell while a
cell runs on the main shell, so while a cell runs nothing here touches a value of that cell:
saved values are summarized after the cell ends, and scans wait for an idle kernel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Protocol

from .protocol import (
    PROTOCOL_VERSION,
    Hello,
    ModelInfo,
    ModuleNode,
    ProtocolError,
    Reply,
    SavedSnapshot,
    SavedValue,
    build_error,
    build_reply,
    parse_request,
)

FIND_LIMIT = 200


class Inspector(Protocol):
    """The kernel-side seam: how models and values look. ``lenslab._lab`` has the real one."""

    def is_model(self, value: Any) -> bool: ...

    def is_value(self, value: Any) -> bool: ...

    def describe(self, name: str, model: Any) -> ModelInfo: ...

    def children(self, model: Any, path: list[str], *, scan: bool) -> list[ModuleNode]: ...

    def find(self, model: Any, query: str, limit: int) -> list[ModuleNode]: ...

    def summarize(self, name: str, value: Any) -> SavedValue: ...


class Sidebar:
    """Answers sidebar requests about the models and saved values in ``namespace``.

    Args:
        namespace: the user's namespace (IPython's ``user_ns``).
        inspector: describes models and values.
        version: lenslab's version, reported by ``hello``.
    """

    def __init__(
        self, namespace: MutableMapping[str, Any], inspector: Inspector, version: str = ""
    ) -> None:
        self.namespace = namespace
        self.inspector = inspector
        self.version = version
        self._lock = threading.Lock()
        self._busy = False
        # the cell's last trace in user code, and the last one a lenslab widget or tool ran
        self._closed_traces: dict[str, tuple[str, list[Any]]] = {}
        self._listener_seen = False
        self._before: dict[str, int] = {}
        self._snapshot: SavedSnapshot = {"trace": 0, "values": []}
        self._user_values: list[SavedValue] = []
        self._own_values: list[SavedValue] = []

    # -- requests (any thread) -----------------------------------------------------------------

    def handle(self, data: Any) -> Reply:
        """The reply to one request message (never raises: errors become ``ok: false``)."""
        request_id = data.get("id") if isinstance(data, dict) else None
        request_id = request_id if isinstance(request_id, str) else ""
        try:
            request = parse_request(data)
            handler: Callable[[dict[str, Any]], Any] = getattr(self, f"handle_{request['method']}")
            return build_reply(request["id"], handler(request["params"]))
        except ProtocolError as error:
            return build_error(request_id, str(error))
        except Exception as error:  # the sidebar shows it; the kernel keeps going
            return build_error(request_id, f"{type(error).__name__}: {error}")

    def handle_hello(self, params: dict[str, Any]) -> Hello:
        return {"protocol": PROTOCOL_VERSION, "lenslab": self.version, "busy": self._busy}

    def handle_models(self, params: dict[str, Any]) -> list[ModelInfo]:
        return [self.inspector.describe(name, model) for name, model in self._models()]

    def handle_children(self, params: dict[str, Any]) -> list[ModuleNode]:
        model = self._model(params["model"])
        return self.inspector.children(model, list(params["path"]), scan=not self._busy)

    def handle_find(self, params: dict[str, Any]) -> list[ModuleNode]:
        query = params["query"].strip()
        if not query:
            return []
        return self.inspector.find(self._model(params["model"]), query, FIND_LIMIT)

    def handle_saved(self, params: dict[str, Any]) -> SavedSnapshot:
        with self._lock:
            return self._snapshot

    # -- kernel events (main shell thread) ---------------------------------------------------------

    def trace_closed(self, saved: list[Any], origin: str = "") -> None:
        """A trace closed having saved ``saved`` (called by the engine's trace listener).

        ``origin`` names the lenslab widget or tool that ran it ("" for the user's own code):
        such values are listed apart and never replace what the user's trace saved.
        """
        with self._lock:
            self._listener_seen = True
            if origin and not saved:  # a widget's trace that saved nothing hides nothing
                return
            # only the latest of each kind is shown: hold no others
            self._closed_traces["own" if origin else "user"] = (origin, list(saved))

    def before_cell(self, *_: Any) -> None:
        """IPython ``pre_run_cell``: a cell starts on the main shell."""
        with self._lock:
            self._busy = True
            self._closed_traces = {}
            self._before = {name: id(value) for name, value in self._items()}

    def after_cell(self, result: Any = None) -> None:
        """IPython ``post_run_cell``: summarize what the cell's last trace saved."""
        with self._lock:
            closed, self._closed_traces = self._closed_traces, {}
            listener_seen = self._listener_seen
            before, self._before = self._before, {}
        try:
            user = closed.get("user")
            own = closed.get("own")
            if user is not None:
                self._user_values = self._summaries(*user)
            elif not listener_seen and _saves_in(result):
                self._user_values = self._rebound_values(before)
            if own is not None:
                self._own_values = self._summaries(*own)
            if user is not None or own is not None or (not listener_seen and _saves_in(result)):
                with self._lock:
                    self._snapshot = {
                        "trace": self._snapshot["trace"] + 1,
                        "values": self._user_values + self._own_values,
                    }
        finally:
            with self._lock:
                self._busy = False

    # -- helpers -----------------------------------------------------------------------------------

    def _items(self) -> Iterator[tuple[str, Any]]:
        for _ in range(5):  # the main shell may bind names while a subshell reads
            try:
                items = list(self.namespace.items())
                break
            except RuntimeError:
                continue
        else:
            items = []
        for name, value in items:
            if not name.startswith("_"):
                yield name, value

    def _models(self) -> list[tuple[str, Any]]:
        seen: set[int] = set()
        found = []
        for name, value in self._items():
            if id(value) not in seen and self.inspector.is_model(value):
                seen.add(id(value))
                found.append((name, value))
        return found

    def _model(self, name: str) -> Any:
        value = self.namespace.get(name)
        if value is None or not self.inspector.is_model(value):
            raise LookupError(f"no lenslab model named {name!r} in this kernel any more")
        return value

    def _summaries(self, origin: str, saved: list[Any]) -> list[SavedValue]:
        names: dict[int, str] = {}
        for name, value in self._items():
            names.setdefault(id(value), name)
        values = []
        for index, value in enumerate(saved):
            summary = self.inspector.summarize(names.get(id(value), f"saved[{index}]"), value)
            summary["origin"] = origin
            values.append(summary)
        return values

    def _rebound_values(self, before: dict[str, int]) -> list[SavedValue]:
        """Without a trace listener: the values the cell bound to names (a saving cell)."""
        values = []
        for name, value in self._items():
            if before.get(name) != id(value) and self.inspector.is_value(value):
                summary = self.inspector.summarize(name, value)
                summary["origin"] = ""
                values.append(summary)
        return values


def _saves_in(result: Any) -> bool:
    source = getattr(getattr(result, "info", None), "raw_cell", None)
    return isinstance(source, str) and "save(" in source
