"""``model.trace / generate (..., remote=True)`` and ``model.session(remote=True)``.

The with-block's body does not run here. On entry its source is read (like a deferred
``tracer.invoke`` body) and skipped; on exit the statement's source, the inputs and the values
of the names the body reads go to the server in one job, and the names the body bound come
back into the caller's scope as real tensors and data, exactly where a local run would have
left them. A session sends all its traces in that one job.
"""

from __future__ import annotations

import builtins
import linecache
import sys
import types
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import torch

from ..engine import frames, source
from ..engine.envoy import Envoy
from ..engine.saving import save
from ..errors import InputError, TraceStateError
from . import errors as remote_errors
from .block import RemoteBlock, remote_block
from .client import Client
from .config import CONFIG
from .errors import RemoteCodeError, RemoteError, RemoteJobError
from .protocol import RUN_NAME, Method, pack, unpack
from .values import Unsendable, decode, encode


class RemoteTracer:
    """The with-block of a remote trace, generation or session (see the module docstring).

    After the block, ``tracer.result`` holds what the model returned (for generation: the token
    ids) when the server could send it, and ``tracer.text`` the decoded generations.
    """

    def __init__(self, model: Any, method: Method, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.model = model
        self.method = method
        self._args, self._kwargs = args, kwargs
        self.result: Any = None
        self._frame: FrameType | None = None
        self._request: bytes | None = None
        self._returns: frozenset[str] = frozenset()
        self._unskip: Callable[[], None] | None = None
        self._filename = ""

    @property
    def text(self) -> list[str]:
        """The generated sequences, decoded (generation only)."""
        if self.result is None:
            return []
        return self.model.tokenizer.batch_decode(self.result, skip_special_tokens=True)

    def __enter__(self) -> RemoteTracer:
        frame = sys._getframe(1)
        block = remote_block(frame)
        engine_block = source.block_at(frame)
        if block is None or engine_block is None or engine_block.body is None:
            raise TraceStateError(
                "remote=True sends the block's source to the server, so it needs the source: "
                "write the block in a file or notebook cell (not a string run with exec), with "
                "no return or yield inside."
            )
        self._frame = frame
        self._filename = block.filename
        self._returns = engine_block.assigned
        self._request = self._build(frame, block)
        self._unskip = frames.skip_body(frame, self, engine_block.body_line)
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self._unskip is not None:
            self._unskip()
            self._unskip = None
        if error_type is not None and error_type is not frames.SkipBody:
            return False
        assert self._frame is not None and self._request is not None
        frame, request = self._frame, self._request
        self._frame = self._request = None
        reply = Client(CONFIG.settings).run(request, f"{self.model_name} {self.method}")
        document, tensors = unpack(reply)
        if document.get("stdout"):
            sys.stdout.write(document["stdout"])
        if document.get("kind") == "error":
            raise _failure(document, self._filename)
        values = {
            name: decode(value, tensors, self._resolve)
            for name, value in document["values"].items()
        }
        self.result = decode(document.get("result"), tensors, self._resolve)
        frames.write_names(frame, values)
        return True

    # -- the request -------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return remote_name(self.model)

    def _build(self, frame: FrameType, block: RemoteBlock) -> bytes:
        namespace = frames.namespace_of(frame)
        model_names = sorted(n for n, v in namespace.items() if v is self.model)
        tensors: dict[str, torch.Tensor] = {}
        variables: dict[str, Any] = {}
        skip = {*model_names, RUN_NAME, block.as_name}
        for name in sorted(block.reads - skip):
            if name not in namespace or name.startswith("_"):
                continue  # bound by the body, a builtin, or refused by the server: never sent
            try:
                variables[name] = encode(namespace[name], tensors, self._reference)
            except Unsendable as why:
                if name in self._returns or hasattr(builtins, name):
                    # Bound by the body before use (a loop variable, say), or a builtin that
                    # IPython shadows in the notebook's namespace (`open`): the server decides.
                    continue
                raise InputError(
                    f"the remote block reads {name!r}, {why}, which cannot be sent to the "
                    "server. Remote code can use tensors, numbers, strings, lists, tuples and "
                    "dicts of them, module paths of this model, and torch; compute the rest "
                    "inside the block."
                ) from None
        try:
            inputs = encode({"args": list(self._args), "kwargs": self._kwargs}, tensors)
        except Unsendable as why:
            raise InputError(
                f"the inputs of this remote {self.method} hold {why}, which cannot be sent; "
                "pass strings, token ids (tensors or lists) or a tokenizer output."
            ) from None
        document = {
            "kind": "job",
            "model": self.model_name,
            "method": self.method,
            "source": block.source,
            "filename": block.filename,
            "line": block.line,
            "inputs": inputs,
            "variables": variables,
            "model_names": model_names,
            "returns": sorted(self._returns),
            "client": {"lenslab": _version(), "python": sys.version.split()[0]},
        }
        return pack(document, tensors)

    def _reference(self, value: Any) -> tuple[str, str] | None:
        if isinstance(value, Envoy) and value._root is self.model:
            return ("envoy", value._name)
        if isinstance(value, types.ModuleType):
            return ("module", value.__name__)
        if value is save:
            return ("function", "lenslab.save")
        return None

    def _resolve(self, kind: str, name: str) -> Any:
        if kind == "envoy":
            return resolve_envoy(self.model, name)
        if kind == "module" and name in sys.modules:
            return sys.modules[name]
        if kind == "function" and name == "lenslab.save":
            return save
        raise RemoteError(f"the server sent a reference this client cannot resolve: {kind} {name}")


def remote_name(model: Any) -> str:
    """The name a hosted model goes by: its checkpoint's directory name (``smollm2-...``)."""
    path = getattr(model, "_path", None)
    if not path:
        raise InputError(
            "remote=True needs a model the server can host by name: LanguageModel('smollm2') or "
            "LanguageModel(path); this one wraps an already loaded module."
        )
    return str(path).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def resolve_envoy(model: Any, path: str) -> Envoy:
    """The envoy at ``path`` (``model.model.layers[3]``) under ``model``."""
    import ast

    try:
        node = ast.parse(path, mode="eval").body
    except SyntaxError:
        raise InputError(f"not a module path: {path!r}") from None
    steps: list[Any] = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            steps.append(node.attr)
        elif isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
            steps.append(node.slice.value)
        else:
            raise InputError(f"not a module path: {path!r}")
        node = node.value
    if not isinstance(node, ast.Name) or node.id != "model":
        raise InputError(f"not a module path: {path!r}")
    envoy = model
    for step in reversed(steps):
        if isinstance(step, int):
            envoy = envoy[step]
        elif step.startswith("_"):
            raise InputError(f"not a module path: {path!r}")
        else:
            envoy = getattr(envoy, step)
    if not isinstance(envoy, Envoy):
        raise InputError(f"{path!r} is not a module of this model")
    return envoy


def _failure(document: dict[str, Any], filename: str) -> BaseException:
    """The exception a failed job raises here: the user's own type where it is a known one."""
    message = str(document.get("message", ""))
    category = document.get("category")
    where = ""
    if document.get("line"):
        where = f"{filename}, line {document['line']}"
        code = linecache.getline(filename, document["line"]) or document.get("code")
        if code:
            where += f": {code.strip()}"
    if category == "code":
        return RemoteCodeError(message)
    if category != "user":
        return RemoteJobError(message)
    error: BaseException | None = None
    for name in [document.get("type", ""), *document.get("bases", [])]:
        cls = _exception_class(str(name))
        if cls is not None:
            try:
                error = cls(message)
                break
            except Exception:
                continue
    if error is None:
        error = RemoteJobError(f"{document.get('type')}: {message}")
    if where:
        error.add_note(f"raised by the block on the lenslab server, at {where}")
    return error


def _exception_class(name: str) -> type[BaseException] | None:
    from .. import errors as lens_errors

    for space in (lens_errors, remote_errors, builtins):
        cls = getattr(space, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls
    return None


def _version() -> str:
    from .. import __version__

    return __version__
