"""Run a with-block's body from lenslab's rewritten code instead of the interpreter's.

Only for bodies that call ``.save()`` on objects that may have no ``save`` (``[].save()``, see
rewrite.py). The body is skipped where it stands (frames.skip_body) and its rewritten code runs
when the block's ``__exit__`` starts: on the same thread and greenlet, with the trace still open,
so reads, edits, step loops and ``tracer.stop()`` behave as in the body itself. The code keeps
the user's file and line numbers (and the function's name), so tracebacks and pdb show the
user's lines. At module scope it runs in the module's own globals; in a function, in a snapshot
of its names, and the names the body binds are then written back into the function's locals.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import LensError, SaveError
from . import frames
from .saving import SAVE_NAME, save_any

if TYPE_CHECKING:
    from .source import Block

_ours: weakref.WeakSet[CodeType] = weakref.WeakSet()  # code this module has run
_named: dict[tuple[CodeType, str], CodeType] = {}


def wanted(frame: FrameType, block: Block | None) -> bool:
    """Whether the body starting in ``frame`` must run from its rewritten code."""
    if block is None or not block.saves_anything:
        return False
    code = frame.f_code
    # Already rewritten code (a block nested in one we run), or RestrictedPython's sandboxed
    # code (the remote server's), which must keep running exactly as that compiler made it.
    return code not in _ours and "_getattr_" not in code.co_names


class Rerun:
    """Skips the body now; ``run()`` runs its rewritten code (call it from ``__exit__``)."""

    def __init__(self, frame: FrameType, block: Block, bound: Any) -> None:
        self.frame = frame
        self.block = block
        self._restore: Callable[[], None] | None = frames.skip_body(frame, bound, block.body_line)

    def restore_tracing(self) -> None:
        """Undo the skip's tracing hook (the block's ``__exit__`` must call this first)."""
        if self._restore is not None:
            self._restore()  # idempotent: forgotten only once it has run (an interrupt may cut it)
            self._restore = None

    def run(self, quiet: tuple[type[BaseException], ...] = ()) -> None:
        """Run the body; an exception of a ``quiet`` type ends it early without propagating."""
        frame, block = self.frame, self.block
        code = _named_like(block.body, frame.f_code.co_name)  # type: ignore[arg-type]
        scope = frame.f_globals
        if frame.f_locals is scope:  # module scope: run in the module itself
            added = SAVE_NAME not in scope
            if added:
                scope[SAVE_NAME] = save_any
            try:
                _exec(code, scope, quiet)
            finally:
                if added:
                    scope.pop(SAVE_NAME, None)
            return
        namespace = namespace_of(frame)
        try:
            _exec(code, namespace, quiet)
        finally:  # also after a failure: names bound before it stay bound, as in the body itself
            frames.write_names(
                frame, {name: namespace[name] for name in block.assigned if name in namespace}
            )


def namespace_of(frame: FrameType) -> dict[str, Any]:
    """``frames.namespace_of``, plus the helper that rewritten ``.save()`` calls use."""
    namespace = frames.namespace_of(frame)
    namespace[SAVE_NAME] = save_any
    return namespace


def _exec(
    code: CodeType, namespace: dict[str, Any], quiet: tuple[type[BaseException], ...]
) -> None:
    with contextlib.suppress(*quiet):
        exec(code, namespace)


_HAS_QUALNAME = sys.version_info >= (3, 11)


def _named_like(code: CodeType, name: str) -> CodeType:
    """``code`` under the function's name, as tracebacks show it (``in f``, not ``in <module>``)."""
    if name == code.co_name:
        _ours.add(code)
        return code
    key = (code, name)
    named = _named.get(key)
    if named is None:
        if len(_named) > 1024:
            _named.clear()
        # co_qualname (what 3.11+ tracebacks print) does not exist on Python 3.10.
        names = {"co_name": name, **({"co_qualname": name} if _HAS_QUALNAME else {})}
        named = _named[key] = code.replace(**names)
        _ours.add(named)
    return named


def from_the_body(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the body's own frame on: lenslab's frames that ran it are noise there."""
    entry = tb
    while entry is not None:
        if entry.tb_frame.f_code in _ours:
            return entry
        entry = entry.tb_next
    return tb


def save_error(error: BaseException, block: Block | None) -> SaveError | None:
    """A clear error for ``x.save()`` on an object without ``save`` in code lenslab did not
    rewrite; None when ``error`` is something else."""
    if not isinstance(error, AttributeError) or isinstance(error, LensError):
        return None
    if getattr(error, "name", None) != "save":
        return None
    kind = type(getattr(error, "obj", None)).__name__
    where = (
        "this block has none (code run by exec, or a %%time cell)"
        if block is None or block.body is None
        else "this call is inside a function or class defined in the block, or the block has "
        "return/yield, which lenslab does not rewrite"
    )
    return SaveError(
        f"{kind!r} object has no .save(): lenslab gives .save() to any object in blocks whose "
        f"source it can read (a file or a notebook cell), and {where}. Use lenslab.save(value) "
        "here: it works on any object, anywhere."
    )
