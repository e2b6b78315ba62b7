"""Generation steps: ``for step in tracer.iter[1:3]:`` and ``for step in tracer.all():``.

A generation runs the model's forward once per new token; each forward is a step. A loop over
steps points the body's reads and edits at one step after another. It ends when its steps are
done or when the generation stops earlier (end of sequence), so code after it always runs.

nnsight's with-forms, ``with tracer.iter[1:3] as step:`` and ``with tracer.all():``, mean the
same loop: the with-body is read from source, skipped where it stands, and run once per step
(``step`` bound to each step number), then the names it bound are written back to the scope.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

from greenlet import getcurrent

from ..errors import InputError, TraceStateError
from . import frames, source
from .mediator import _bodies

if TYPE_CHECKING:
    from .handles import OpenTrace
    from .mediator import Mediator


class Steps:
    """``tracer.iter``: index it with an int, a slice or a list of step numbers."""

    def __init__(self, tracer: OpenTrace) -> None:
        self._tracer = tracer

    def __getitem__(self, selection: int | slice | list[int]) -> StepLoop:
        return StepLoop(self._tracer, selection)


class StepLoop:
    """The iterable of chosen steps; yields each step number as the run reaches it."""

    def __init__(self, tracer: OpenTrace, selection: int | slice | list[int]) -> None:
        self._tracer = tracer
        self._selection = selection
        self._frame: FrameType | None = None
        self._unskip: Callable[[], None] | None = None

    # -- the with-form --------------------------------------------------------------------------

    def __enter__(self) -> None:
        frame = sys._getframe(1)
        block = source.block_at(frame)
        if block is None or block.body is None:
            raise TraceStateError(
                "`with tracer.iter[...]:` runs its body once per step, so it needs the block's "
                "source (a file or notebook cell, no return/yield inside). Write the loop as "
                "`for step in tracer.iter[...]:` instead."
            )
        _running_mediator(self._tracer)  # outside a body: the error says where to loop
        self._frame = frame
        self._unskip = frames.skip_body(frame, None, block.body_line)

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        unskip, self._unskip = self._unskip, None
        if unskip is not None:
            unskip()
        frame, self._frame = self._frame, None
        if error_type is not frames.SkipBody or frame is None:
            return False
        self._run_body(frame)
        return True

    def _run_body(self, frame: FrameType) -> None:
        """Run the skipped with-body once per chosen step, then bind its names in ``frame``."""
        block = source.block_at(frame)
        assert block is not None and block.body is not None
        node = source.with_statement_at(frame.f_code.co_filename, frame.f_lineno)
        target = node.items[0].optional_vars if node is not None else None
        as_name = target.id if isinstance(target, ast.Name) else None
        namespace = frames.namespace_of(frame)
        for step in self:
            if as_name is not None:
                namespace[as_name] = step
            exec(block.body, namespace)
        names = set(block.assigned) | ({as_name} if as_name else set())
        frames.write_names(frame, {n: namespace[n] for n in names if n in namespace})

    # -- the for-form ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[int]:
        mediator = _running_mediator(self._tracer)
        il = mediator.interleaver
        steps = _chosen(self._selection, il.steps if il.counts_steps else None)
        previous = mediator.step
        try:
            for step in steps:
                if not mediator.reach_step(step):
                    return  # the run ended early (end of sequence): the loop just ends
                mediator.step = step
                yield step
        finally:
            mediator.step = previous


def advance(tracer: OpenTrace, steps: int) -> None:
    """``tracer.next(steps)``: the running body's later reads and edits are ``steps`` on."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"tracer.next(steps) needs a whole number of steps from 1, got {steps!r}.")
    _running_mediator(tracer).step += steps


def _running_mediator(tracer: OpenTrace) -> Mediator:
    """The body (inline or an invoke's) running here that traces ``tracer``'s model."""
    root = tracer.model._module
    for mediator in reversed(_bodies.get(getcurrent(), [])):
        if mediator.interleaver.root is root:
            return mediator
    raise TraceStateError(
        "use tracer.iter[...], tracer.all() and tracer.next() inside the with-block (and inside "
        "an invoke block when the trace uses tracer.invoke)."
    )


def _chosen(selection: int | slice | list[int], limit: int | None) -> list[int]:
    """The step numbers chosen; ``limit`` None: a single forward, whose "steps" are a module's
    repeated calls (an open slice then means the first only, as nothing bounds them)."""
    if isinstance(selection, slice):
        if selection.step is not None and selection.step < 1:
            raise InputError(f"tracer.iter[...] needs a positive slice step, got {selection}.")
        stop = (limit or 1) if selection.stop is None else selection.stop
        steps = list(range(selection.start or 0, stop, selection.step or 1))
    elif isinstance(selection, int):
        steps = [selection]
    else:
        steps = sorted(set(selection))
    if limit is None:
        if any(s < 0 for s in steps):
            raise InputError(f"tracer.iter[...] needs call numbers from 0, got {selection}.")
        return steps
    bad = [s for s in steps if not 0 <= s < limit]
    if bad:
        raise InputError(
            f"tracer.iter asks for step {bad[0]}, but this run makes at most {limit} step"
            f"{'s' if limit != 1 else ''} (0-{limit - 1}); for a generation that is "
            "max_new_tokens."
        )
    return steps
