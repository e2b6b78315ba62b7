"""Control over the caller's frame for deferred ``tracer.invoke`` bodies, via public APIs only.

A deferred invoke body must not run where it is written (it runs later, inside the batched
forward), and the names it binds must then appear in the caller's scope. Both use the tracing
hooks debuggers use (``sys.settrace`` / ``frame.f_trace``), installed for one event and removed
at once; names are written through ``frame.f_locals``, which CPython copies back into a
function's fast locals after a trace callback (3.10-3.12) or writes through directly (PEP 667,
3.13+). No ctypes, no private C API.
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import Any

_CO_OPTIMIZED = 0x1
_WRITES_THROUGH = sys.version_info >= (3, 13)


class SkipBody(BaseException):
    """Raised where a deferred with-body would start; its ``__exit__`` swallows it."""


def _ignore(frame: FrameType, event: str, arg: Any) -> None:
    return None


_STORES = frozenset({"STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"})
_targets: dict[tuple[CodeType, int], tuple[bool, str | None, bool]] = {}


def _as_target(code: CodeType, lasti: int) -> tuple[bool, str | None, bool]:
    """What follows the ``__enter__`` call at ``lasti``: (simple, ``as`` name, name is global).

    ``simple`` means the next instruction is a plain ``POP_TOP`` (no ``as``) or a store to one
    name, which lenslab can perform itself; anything else (``as (a, b)``, ``as self.x``) is not.
    """
    key = (code, lasti)
    found = _targets.get(key)
    if found is None:
        following = next(i for i in dis.get_instructions(code) if i.offset > lasti)
        if following.opname == "POP_TOP":
            found = (True, None, False)
        elif following.opname in _STORES:
            found = (True, following.argval, following.opname == "STORE_GLOBAL")
        else:
            found = (False, None, False)
        if len(_targets) > 4096:
            _targets.clear()
        _targets[key] = found
    return found


def as_name(frame: FrameType) -> str | None:
    """The one name a with-statement whose ``__enter__`` is running in ``frame`` binds, if any."""
    return _as_target(frame.f_code, frame.f_lasti)[1]


def skip_body(frame: FrameType, bound: Any, body_line: int) -> Callable[[], None]:
    """Make the with-body about to run in ``frame`` raise SkipBody instead of running.

    The stop comes at the very next instruction after ``__enter__`` returns (an opcode event):
    that instruction lies inside the with-statement's exception handler on every CPython,
    whereas a body's own first instruction may not (the ``NOP`` of a leading ``try:``). The
    ``as`` name that instruction would have bound is bound here instead, to ``bound``. For a
    complex ``as`` target the stop waits for the body's first line (``body_line``).

    CPython turns tracing off when a trace function raises, so the caller's ``__exit__`` must
    call the returned ``restore``: it puts a debugger's or coverage's tracer back (and, if the
    stop never fired, removes it).
    """
    return _Skip(frame, bound, body_line).restore


class _Skip:
    """The trace function of ``skip_body``. An object, not a closure that returns itself: such a
    closure is a reference cycle through the caller's frame, so the frame, and every value its
    locals hold, would outlive the block until the garbage collector ran."""

    def __init__(self, frame: FrameType, bound: Any, body_line: int) -> None:
        self.frame = frame
        self.bound = bound
        self.body_line = body_line
        self.previous_global = sys.gettrace()
        self.previous_local = frame.f_trace
        self.start = frame.f_lasti
        self.simple, self.name, self.is_global = _as_target(frame.f_code, self.start)
        frame.f_trace = self
        frame.f_trace_opcodes = self.simple
        sys.settrace(self.previous_global or _ignore)

    def __call__(self, traced: FrameType, event: str, arg: Any) -> Any:
        if traced is not self.frame or traced.f_lasti <= self.start:
            return self
        if not self.simple and not (event == "line" and traced.f_lineno >= self.body_line):
            return self
        bound, name = self.bound, self.name
        self.restore()
        if name is not None:  # CPython copies f_locals back into the frame after this callback
            (traced.f_globals if self.is_global else traced.f_locals)[name] = bound
        raise SkipBody

    def restore(self) -> None:
        """Put the previous tracers back. Called again after the stop fired (CPython turned
        tracing off when it raised), and safe to repeat (an interrupt may cut it short)."""
        self.frame.f_trace = self.previous_local
        self.frame.f_trace_opcodes = False
        sys.settrace(self.previous_global)


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
        # The event was meant for the tracer that was there before (a debugger, coverage).
        return previous_local(traced, event, arg) if previous_local is not None else None

    write.lenslab_pending = values  # type: ignore[attr-defined]
    frame.f_trace = write
    frame.f_trace_lines = True
    sys.settrace(previous_global or _ignore)
