"""One remote job, run in a model worker: decode it, run its block in the sandbox, encode what
it bound.

The block runs as real lenslab code against a per-job copy of the hosted model (same weights,
its own edits), inside ``with lenslab_remote_block() as tracer:``, which opens the trace,
generation or session the client asked for with the inputs it sent. The block's text is
registered in ``linecache`` under the job's own file name, so the engine finds its
``tracer.invoke`` blocks and module reads exactly as it would in the user's file.
"""

from __future__ import annotations

import builtins
import linecache
import traceback
from typing import Any

import torch

from ..engine.envoy import Envoy
from ..engine.saving import save
from ..remote.protocol import RUN_NAME, JobFailure, pack, unpack
from ..remote.tracer import resolve_envoy
from ..remote.values import Unsendable, decode, encode
from .guards import Printed, SandboxError, job_globals, module_proxy
from .policy import ALLOWED_MODULES, RemoteCodeRejected, check


class JobInputError(ValueError):
    """The job document is malformed or refers to something the server cannot provide."""


def run_job(hosted: Any, message: bytes, job_id: str, max_result: int) -> bytes:
    """Run one job message against ``hosted``; the reply message (result or failure)."""
    printed = Printed()
    filename = f"<lenslab job {job_id[:8]}>"
    text = ""
    try:
        document, tensors = unpack(message)
        variables = document["variables"]
        provided = {*variables, *document["model_names"]}
        modules = [n for n, v in variables.items() if isinstance(v, dict) and "$module" in v]
        checked = check(document["source"], filename, int(document["line"]), provided, modules)
        text = checked.text
        twin = hosted._copy()
        namespace, opened = _namespace(twin, document, tensors, printed)
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        try:
            exec(checked.code, namespace)
        finally:
            linecache.cache.pop(filename, None)
        return _reply(twin, document, namespace, opened, printed, max_result)
    except RemoteCodeRejected as rejected:
        return _failure("code", rejected, printed, "\n".join(rejected.problems))
    except (SandboxError, JobInputError) as error:
        return _failure("code", error, printed, str(error), *_user_line(error, filename, text))
    except Exception as error:
        return _failure("user", error, printed, str(error), *_user_line(error, filename, text))


def _namespace(
    twin: Any, document: dict[str, Any], tensors: dict[str, torch.Tensor], printed: Printed
) -> tuple[dict[str, Any], list[Any]]:
    def resolve(kind: str, name: str) -> Any:
        if kind == "envoy":
            return resolve_envoy(twin, name)
        if kind == "module" and name in ALLOWED_MODULES:
            return module_proxy(name)
        if kind == "function" and name == "lenslab.save":
            return save
        raise JobInputError(f"{kind} {name!r} cannot be used in remote code")

    namespace = job_globals(printed)
    for name, value in document["variables"].items():
        namespace[name] = decode(value, tensors, resolve)
    for name in document["model_names"]:
        namespace[name] = twin
    inputs = decode(document["inputs"], tensors, resolve)
    args, kwargs = tuple(inputs["args"]), dict(inputs["kwargs"])
    method = document["method"]
    opened: list[Any] = []

    def open_block() -> Any:
        if opened:
            raise SandboxError(f"{RUN_NAME}() opens the job's own block only.")
        if method == "trace":
            block = twin.trace(*args, **kwargs)
        elif method == "generate":
            block = twin.generate(*args, **kwargs)
        elif method == "session":
            block = twin.session()
        else:
            raise JobInputError(f"unknown method {method!r}")
        opened.append(block)
        return block

    namespace[RUN_NAME] = open_block
    return namespace, opened


def _reply(
    twin: Any,
    document: dict[str, Any],
    namespace: dict[str, Any],
    opened: list[Any],
    printed: Printed,
    max_result: int,
) -> bytes:
    def reference(value: Any) -> tuple[str, str] | None:
        if isinstance(value, Envoy) and value._root is twin:
            return ("envoy", value._name)
        return None

    tensors: dict[str, torch.Tensor] = {}
    values = {}
    for name in document["returns"]:
        if name in namespace and name != RUN_NAME:
            try:
                values[name] = encode(namespace[name], tensors, reference)
            except Unsendable:
                continue  # a function, a tracer...: locally usable only
    reply: dict[str, Any] = {"kind": "result", "values": values, "result": None}
    reply["stdout"] = printed.buffer.getvalue()
    message = pack(reply, tensors)
    result = getattr(opened[0], "result", None) if opened else None
    if result is not None:
        with_result = dict(tensors)
        try:
            reply["result"] = encode(result, with_result, reference)
            bigger = pack(reply, with_result)
            if len(bigger) <= max_result:
                message = bigger
        except Unsendable:
            pass
    if len(message) > max_result:
        raise _TooBig(len(message), max_result)
    return message


class _TooBig(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the job's result is {size / 1e6:.1f} MB, over this server's limit of "
            f"{limit / 1e6:.1f} MB. Bind (or .save()) less in the block: a slice, a mean, or "
            "only the positions you need; every name the block binds is sent back."
        )


def _failure(
    category: str,
    error: BaseException,
    printed: Printed,
    message: str,
    line: int | None = None,
    code: str | None = None,
) -> bytes:
    if isinstance(error, _TooBig):
        category = "limit"
    bases = [
        cls.__name__
        for cls in type(error).__mro__[1:]
        if getattr(builtins, cls.__name__, None) is cls and issubclass(cls, Exception)
    ]
    document: JobFailure = {
        "kind": "error",
        "category": category,
        "type": type(error).__name__,
        "bases": bases,
        "message": message,
        "line": line,
        "code": code,
        "stdout": printed.buffer.getvalue(),
    }
    return pack(dict(document), {})


def _user_line(error: BaseException, filename: str, text: str) -> tuple[int | None, str | None]:
    """The last line of the block's own code in ``error``'s traceback, and its text."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    if not frames or not frames[-1].lineno:
        return None, None
    lineno = frames[-1].lineno
    lines = text.splitlines()
    return lineno, lines[lineno - 1] if 0 < lineno <= len(lines) else None
