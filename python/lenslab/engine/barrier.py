"""``tracer.barrier(n)``: no invoke goes past ``barrier()`` until ``n`` invokes have reached it.

Why it is small here: lenslab already runs the invokes' bodies of one forward in invoke order
at each module, and a later invoke sees the names an earlier one bound, so cross-invoke code
gives the same values with or without barriers. A barrier keeps nnsight's contract anyway:
an invoke that arrives early parks (handing the forward back, so the next invokes run up to
their own ``barrier()``), and the last arrival releases every participant, in invoke order,
at the module the forward is at. A participant parked at an earlier module keeps no hold on
that module's value: the forward has used it.

A barrier that fewer than ``n`` invokes reach is a ``BarrierError``: at once when the forward
has fewer than ``n`` invoke bodies, otherwise when the forward ends with invokes parked.
"""

from __future__ import annotations

from typing import Any

from greenlet import getcurrent

from ..errors import BarrierError
from .mediator import Mediator, _bodies

_PARKED = (None, "barrier", -2)  # a Mediator.waiting no module hook ever matches


class Barrier:
    """What ``tracer.barrier(n)`` returns; call it in each participating invoke's body."""

    def __init__(self, root: Any, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise BarrierError(f"tracer.barrier(n) needs a positive int n, got {n!r}.")
        self._root = root  # the traced torch module
        self.n = n
        self._arrived: list[Mediator] = []
        self._released: set[Mediator] = set()

    def __call__(self) -> None:
        mediator = self._current()
        il = mediator.interleaver
        if self._arrived and self._arrived[0].interleaver is not il:  # a new forward
            self._arrived.clear()
        bodies = sum(m.deferred for m in il.mediators)
        if not mediator.deferred or bodies < self.n:
            raise BarrierError(
                f"barrier({self.n}) can never be passed: this forward runs "
                f"{bodies if mediator.deferred else 1} invoke body(s) together. Call "
                f"tracer.barrier(n) with n = the number of invokes that call it, each inside "
                "its own `with tracer.invoke(...)` in one trace (invokes run as one forward "
                "only where lenslab can read their source)."
            )
        if mediator in self._arrived:
            raise BarrierError(
                f"barrier({self.n}) reached twice by invoke {mediator.index} before the other "
                "invokes reached it: call it once per invoke (per generation step in a loop)."
            )
        self._arrived.append(mediator)
        if len(self._arrived) == self.n:
            participants = sorted(self._arrived, key=lambda m: m.index)
            self._arrived = []
            il.wakeups.append(lambda: self._release(participants))
        self._park(mediator)

    def _current(self) -> Mediator:
        for mediator in reversed(_bodies.get(getcurrent(), ())):
            if mediator.interleaver.root is self._root:
                return mediator
        raise BarrierError(
            "barrier() was called outside an invoke body of its trace: call it inside "
            "`with tracer.invoke(...)` blocks of the trace that made it."
        )

    def _park(self, mediator: Mediator) -> None:
        """Hand the forward back until this barrier releases ``mediator`` (or the run ends)."""
        mediator.waiting = _PARKED
        try:
            mediator.interleaver.resume()
        finally:
            mediator.waiting = None
        if mediator in self._released:
            self._released.discard(mediator)
            return
        waiting = len(self._arrived)
        self._arrived.clear()
        raise BarrierError(
            f"barrier({self.n}) was reached by only {waiting} invoke(s) before the forward "
            f"ended: {self.n - waiting} more must call it. Call barrier() in every invoke that "
            "counts, or make the barrier with the number of invokes that call it."
        )

    def _release(self, participants: list[Mediator]) -> None:
        """On the forward's side: let each participant go on, in invoke order."""
        il = participants[0].interleaver
        for mediator in participants:
            if mediator.waiting is not _PARKED or mediator.greenlet.dead:
                continue
            if mediator.slot is not None and mediator.slot.key != il.current:
                mediator.slot = None  # parked at an earlier module: the forward has used it
            self._released.add(mediator)
            mediator.greenlet.switch()
            if mediator.after_switch is not None:
                mediator.after_switch()
            if il.failure is not None:
                return
