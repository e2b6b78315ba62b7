"""Control over the caller's frame for deferred ``tracer.invoke`` bodies, via public APIs only.

A deferred invoke body must not run where it is written (it runs later, inside the batched
forward), and the names it binds must then appear in the caller's scope. Both use the tracing
hooks debuggers use (``sys.settrace`` / ``frame.f_trace``), installed for one event and removed
at once; names are written through ``frame.f_locals``, which CPython copies back into a
function's fast locals after a trace callback (3.10-3.12) or writes through directly (PEP 667,
3.13+). No ctypes, no private C API.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

_CO_OPTIMIZED = 0x1
_WRITES_THROUGH = sys.version_info >= (3, 13)


class SkipBody(BaseException):
    """Raised at the first instruction of a deferred with-body; its ``__exit__`` swallows it."""


def _ignore(frame: FrameType, event: str, arg: Any) -> None:
    return None


def skip_body(frame: FrameType, body_line: int, one_line: bool) -> None:
    """Make the with-body about to run in ``frame`` raise SkipBody before its first step.

    ``body_line`` is the body's first line: stopping there, not earlier, lets the header's
    ``as name`` binding happen first. A body on the header's own line emits no line event, so
    there the stop comes at the first instruction instead (and an ``as`` name stays unbound).
    """
    previous_global = sys.gettrace()
    previous_local = frame.f_trace

    def stop(traced: FrameType, event: str, arg: Any) -> Any:
        if traced is frame and (
            (event == "line" and traced.f_lineno >= body_line) or event == "opcode"
        ):
            frame.f_trace = previous_local
            frame.f_trace_opcodes = False
            sys.settrace(previous_global)
            raise SkipBody
        return stop

    frame.f_trace = stop
    frame.f_trace_opcodes = one_line
    sys.settrace(previous_global or _ignore)


def namespace_of(frame: FrameType) -> dict[str, Any]:
    """A snapshot of every name visible in ``frame`` (its globals, then its locals)."""
    namespace = dict(frame.f_globals)
    if frame.f_locals is not frame.f_globals:
        namespace.update(frame.f_locals)
    return namespace


def write_names(frame: FrameType, names: Mapping[str, Any]) -> None:
    """Bind ``names`` in the scope running in ``frame`` before its next line runs."""
    if not names:
        return
    code = frame.f_code
    if code.co_flags & _CO_OPTIMIZED:  # a function: names it declared global go to globals
        local = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
        for name in [n for n in names if n not in local]:
            frame.f_globals[name] = names[name]
        names = {n: v for n, v in names.items() if n in local}
        if not names:
            return
    if _WRITES_THROUGH or not code.co_flags & _CO_OPTIMIZED:
        scope = frame.f_locals  # module and class scopes: the real dict; 3.13+: write-through
        for name, value in names.items():
            scope[name] = value
        return
    pending = getattr(frame.f_trace, "lenslab_pending", None)
    if pending is not None:  # a write already waits for this frame's next event: add to it
        pending.update(names)
        return
    previous_global = sys.gettrace()
    previous_local = frame.f_trace
    values = dict(names)

    def write(traced: FrameType, event: str, arg: Any) -> Any:
        if traced is not frame:
            return None
        traced.f_locals.update(values)  # CPython copies f_locals back after this callback
        frame.f_trace = previous_local
        sys.settrace(previous_global)
        return previous_local

    write.lenslab_pending = values  # type: ignore[attr-defined]
    frame.f_trace = write
    frame.f_trace_lines = True
    sys.settrace(previous_global or _ignore)
