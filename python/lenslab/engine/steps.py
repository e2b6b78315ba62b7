"""Generation steps: ``for step in tracer.iter[1:3]:`` and ``for step in tracer.all():``.

A generation runs the model's forward once per new token; each forward is a step. A loop over
steps points the body's reads and edits at one step after another. It ends when its steps are
done or when the generation stops earlier (end of sequence), so code after it always runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from greenlet import getcurrent

from ..errors import InputError, TraceStateError
from .mediator import _bodies

if TYPE_CHECKING:
    from .mediator import Mediator
    from .tracer import Tracer


class Steps:
    """``tracer.iter``: index it with an int, a slice or a list of step numbers."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def __getitem__(self, selection: int | slice | list[int]) -> StepLoop:
        return StepLoop(self._tracer, selection)


class StepLoop:
    """The iterable of chosen steps; yields each step number as the run reaches it."""

    def __init__(self, tracer: Tracer, selection: int | slice | list[int]) -> None:
        self._tracer = tracer
        self._selection = selection

    def __iter__(self) -> Iterator[int]:
        mediator = _running_mediator(self._tracer)
        steps = _chosen(self._selection, mediator.interleaver.steps)
        previous = mediator.step
        try:
            for step in steps:
                if not mediator.reach_step(step):
                    return  # the run ended early (end of sequence): the loop just ends
                mediator.step = step
                yield step
        finally:
            mediator.step = previous


def _running_mediator(tracer: Tracer) -> Mediator:
    root = tracer.model._module
    for mediator in reversed(_bodies.get(getcurrent(), [])):
        if mediator.interleaver.root is root:
            return mediator
    raise TraceStateError(
        "loop over tracer.iter[...] / tracer.all() inside the with-block (and inside an invoke "
        "block when the trace uses tracer.invoke)."
    )


def _chosen(selection: int | slice | list[int], limit: int) -> list[int]:
    if isinstance(selection, slice):
        if selection.step is not None and selection.step < 1:
            raise InputError(f"tracer.iter[...] needs a positive slice step, got {selection}.")
        stop = limit if selection.stop is None else selection.stop
        steps = list(range(selection.start or 0, stop, selection.step or 1))
    elif isinstance(selection, int):
        steps = [selection]
    else:
        steps = sorted(set(selection))
    bad = [s for s in steps if not 0 <= s < limit]
    if bad:
        raise InputError(
            f"tracer.iter asks for step {bad[0]}, but this run makes at most {limit} step"
            f"{'s' if limit != 1 else ''} (0-{limit - 1}); for a generation that is "
            "max_new_tokens."
        )
    return steps
