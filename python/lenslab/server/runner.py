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

from ..engine import source as engine_source
from ..engine.envoy import Envoy
from ..engine.saving import save
from ..remote.protocol import RUN_NAME, pack, unpack
from ..remote.tracer import resolve_envoy
from ..remote.values import Unsendable, decode, encode
from .compiler import UnguardedCode, approve, job_filename
from .guards import Printed, SandboxError, job_globals, module_proxy
from .policy import ALLOWED_MODULES, RemoteCodeRejected, check, explain, unguarded
from .replies import failure_document, fit


class JobInputError(ValueError):
    """The job document is malformed or refers to something the server cannot provide."""


def run_job(
    hosted: Any,
    message: bytes,
    job_id: str,
    max_result: int,
    refused: frozenset[str] | None = None,
) -> bytes:
    """Run one job message against ``hosted``; the reply message (result or failure), which is
    never over ``max_result`` bytes. ``refused``: attribute names the up-front check refuses."""
    printed = Printed(limit=max_result)
    filename = job_filename(job_id)
    text = ""
    source, line = "", 1
    try:
        document, tensors = unpack(message)
        variables = document["variables"]
        source, line = document["source"], int(document["line"])
        provided = {*variables, *document["model_names"]}
        modules = [n for n, v in variables.items() if isinstance(v, dict) and "$module" in v]
        if unguarded():
            text = "\n" * (line - 1) + source
            code = approve(compile(text, filename, "exec"))
        else:
            checked = check(source, filename, line, provided, modules, refused)
            text, code = checked.text, approve(checked.code)
        twin = hosted._copy()
        namespace, opened = _namespace(twin, document, tensors, printed)
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        try:
            exec(code, namespace)
        finally:
            linecache.cache.pop(filename, None)
            engine_source.forget_file(filename)  # the engine's parse cache: one per job
        return _reply(twin, document, namespace, opened, printed, max_result)
    except RemoteCodeRejected as rejected:
        reason = explain(rejected, source, filename, line)
        return fit(failure_document("code", rejected, reason, printed.text()), {}, max_result)
    except (SandboxError, JobInputError, UnguardedCode) as error:
        where, code_line = _user_line(error, filename, text)
        reason = str(error)
        if where is not None:
            shown = (code_line or "").strip()
            reason = f"the block was stopped at line {where} `{shown}`: {reason}"
        document = failure_document("code", error, reason, printed.text(), where, code_line)
        return fit(document, {}, max_result)
    except Exception as error:
        where, code_line = _user_line(error, filename, text)
        document = failure_document("user", error, str(error), printed.text(), where, code_line)
        return fit(document, {}, max_result)


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
    if unguarded():
        namespace["__builtins__"] = builtins
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
    reply["stdout"] = printed.text()
    result = getattr(opened[0], "result", None) if opened else None
    if result is not None:
        with_result = dict(tensors)
        try:
            encoded = encode(result, with_result, reference)
            bigger = pack(dict(reply, result=encoded), with_result)
            if len(bigger) <= max_result:
                return bigger
        except Unsendable:
            pass
    return fit(reply, tensors, max_result)


def _user_line(error: BaseException, filename: str, text: str) -> tuple[int | None, str | None]:
    """The last line of the block's own code in ``error``'s traceback, and its text."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    if not frames or not frames[-1].lineno:
        return None, None
    lineno = frames[-1].lineno
    lines = text.splitlines()
    return lineno, lines[lineno - 1] if 0 < lineno <= len(lines) else None
