"""The wire format between the lab sidebar and the kernel, version 1 (mirrored in
``js/lab/src/protocol.ts``; both sides check the same examples, tests/comms/protocol_examples.json).

Every message is a JSON object with ``v`` (the protocol version) and ``type``:

- front end -> kernel, ``request``: ``{"v": 1, "type": "request", "id": "r1", "method": "models",
  "params": {}}``. Methods: ``hello``, ``models``, ``children`` (``model``, ``path``), ``find``
  (``model``, ``query``), ``saved``.
- kernel -> front end, ``reply``: ``{"v": 1, "type": "reply", "id": "r1", "ok": true, "result":
  ...}`` or ``"ok": false, "error": "..."``. Every request gets exactly one reply, same ``id``.

Nothing is pushed: the front end asks again after each cell, so every kernel-side send happens
on the thread (kernel subshell) that received the request.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from ..errors import LensError

PROTOCOL_VERSION = 1
TARGET_NAME = "lenslab"

Method = Literal["hello", "models", "children", "find", "saved"]
METHODS: tuple[str, ...] = ("hello", "models", "children", "find", "saved")


class ProtocolError(LensError):
    """A message that does not follow the lenslab comm protocol."""


class Request(TypedDict):
    v: int
    type: Literal["request"]
    id: str
    method: Method
    params: dict[str, Any]


class Reply(TypedDict, total=False):
    v: int
    type: Literal["reply"]
    id: str
    ok: bool
    result: Any
    error: str


class Hello(TypedDict):
    """``hello``'s result: who answers, and whether a cell is running on the main shell."""

    protocol: int
    lenslab: str
    busy: bool


class ModelInfo(TypedDict):
    """One wrapped model alive in the kernel, under its variable name."""

    name: str
    cls: str
    wrapper: str
    params: int
    device: str
    dtype: str


class ModuleNode(TypedDict):
    """One module of a model's tree. ``path`` holds child keys from the root ("layers", "5").

    ``shape`` is what a scan on a short dummy input saw it return (``None``: not scanned).
    ``children`` counts submodules and ``calls`` the calls in its forward; a module's children
    list both, the calls as nodes of kind ``"call"`` whose path ends in ``"source", name`` and
    whose ``cls`` is the line of code the call is on.
    """

    key: str
    path: list[str]
    cls: str
    children: int
    calls: int
    shape: str | None
    kind: Literal["module", "call"]


class SavedValue(TypedDict):
    """One value the most recent trace saved. Statistics are ``None`` for non-tensors.

    ``spark`` is a 1-D profile (up to 48 numbers) and ``heat`` a 2-D grid (rows of numbers),
    both already downsampled; at most one of them is set. ``origin`` is ``""`` for a trace in
    the user's code, else the lenslab widget or tool whose own trace saved it (e.g.
    ``"PatchingGrid"``): those are listed apart and never replace the user's values.
    """

    name: str
    kind: str
    shape: list[int] | None
    dtype: str | None
    min: float | None
    mean: float | None
    max: float | None
    spark: list[float] | None
    heat: list[list[float]] | None
    origin: str


class SavedSnapshot(TypedDict):
    """``saved``'s result: the values, and a counter that grows with each trace seen."""

    trace: int
    values: list[SavedValue]


_PARAMS: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "hello": (),
    "models": (),
    "saved": (),
    "children": (("model", str), ("path", list)),
    "find": (("model", str), ("query", str)),
}


def parse_request(data: Any) -> Request:
    """Check that ``data`` is a version-1 request and return it.

    Raises:
        ProtocolError: naming what is missing or wrong.
    """
    if not isinstance(data, dict):
        raise ProtocolError(f"a lenslab message is a JSON object, got {type(data).__name__}")
    if data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"lenslab protocol version {data.get('v')!r} is not supported: this kernel speaks "
            f"version {PROTOCOL_VERSION}. Reinstall lenslab so the lab extension and the "
            "package match."
        )
    if data.get("type") != "request":
        raise ProtocolError(f"expected a request, got type {data.get('type')!r}")
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise ProtocolError("a request needs a non-empty string id")
    method = data.get("method")
    if method not in _PARAMS:
        raise ProtocolError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(f"params of {method!r} must be an object")
    for name, kind in _PARAMS[method]:
        if not isinstance(params.get(name), kind):
            raise ProtocolError(f"{method!r} needs params.{name} ({_kind_name(kind)})")
    if method == "children" and not all(isinstance(p, str) for p in params["path"]):
        raise ProtocolError("'children' needs params.path as a list of strings")
    return {"v": PROTOCOL_VERSION, "type": "request", "id": data["id"], "method": method,
            "params": params}


def build_request(request_id: str, method: Method, **params: Any) -> Request:
    """A request, as the front end builds it (for tests and Python clients)."""
    return parse_request(
        {"v": PROTOCOL_VERSION, "type": "request", "id": request_id, "method": method,
         "params": params}
    )


def build_reply(request_id: str, result: Any) -> Reply:
    """A successful reply to the request ``request_id``."""
    return {"v": PROTOCOL_VERSION, "type": "reply", "id": request_id, "ok": True,
            "result": result}


def build_error(request_id: str, message: str) -> Reply:
    """A failed reply to the request ``request_id``, with a message for the sidebar."""
    return {"v": PROTOCOL_VERSION, "type": "reply", "id": request_id, "ok": False,
            "error": message}


def parse_reply(data: Any) -> Reply:
    """Check that ``data`` is a version-1 reply and return it.

    Raises:
        ProtocolError: naming what is missing or wrong.
    """
    if not isinstance(data, dict) or data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("expected a version-1 lenslab reply object")
    if data.get("type") != "reply" or not isinstance(data.get("id"), str):
        raise ProtocolError("a reply needs type 'reply' and a string id")
    if data.get("ok") is True and "result" in data:
        return {"v": PROTOCOL_VERSION, "type": "reply", "id": data["id"], "ok": True,
                "result": data["result"]}
    if data.get("ok") is False and isinstance(data.get("error"), str):
        return build_error(data["id"], data["error"])
    raise ProtocolError("a reply has ok=true with a result, or ok=false with an error string")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return {str: "a string", list: "a list"}.get(kind, str(kind))  # type: ignore[call-overload]
