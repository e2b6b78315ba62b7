"""Long work a widget runs (a patching sweep, a steering regeneration): one run at a time, with
progress and time left, cancellable from the widget.

A run asked for by the front end goes to a background thread, so the kernel keeps reading the
widget's messages (Cancel, clicks) while it runs; a run called from code runs in the cell, as any
call does (interrupt the kernel to stop it; what it filled in stays). A request that arrives
while a run is going is either queued (the latest replaces any queued before it, and the running
one is stopped because its result is stale) or refused with a LensError naming the run. A run
stops with an error when the model's persistent edits change under it
(``model.edit(inplace=True)`` or ``clear_edits()`` from a cell while it runs): its results would
mix two models.

Example:
    >>> grid.handle_sweep({})       # what the "Run full sweep" button does
    >>> grid.task, grid.progress    # ("sweep", 0.4); grid.eta: seconds left
    >>> grid.cancel()               # what the Cancel button does; the filled cells stay
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import traitlets as t

from ..errors import LensError
from ._base import LensWidget, Refused

Step = Callable[[int, int], None]  # step(done, total): report progress; raises Cancelled
Body = Callable[[Step], None]


class Cancelled(LensError):
    """A widget's run was stopped (its Cancel button, ``.cancel()``, or a newer request)."""


def _edits_of(model: Any) -> tuple[int, ...] | None:
    """What identifies the persistent edits a model's traces apply now (models/module.py)."""
    edits = getattr(model, "_edits", None)
    return None if edits is None else (id(edits), *map(id, edits))


class RunsWork(LensWidget):
    """A widget with long runs: ``task`` (what runs, "" when idle), ``progress`` (0-1),
    ``eta`` (seconds left, -1 unknown), ``queued`` (what starts next) and ``outcome`` (how the
    last run ended)."""

    task = t.Unicode("").tag(sync=True)
    progress = t.Float(0.0).tag(sync=True)
    eta = t.Float(-1.0).tag(sync=True)
    queued = t.Unicode("").tag(sync=True)
    outcome = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next: tuple[str, Body, str] | None = None
        self._started = 0.0
        self._edits_at_start: tuple[int, ...] | None = None
        super().__init__(**kwargs)

    # -- public -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a background run is going."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def cancel(self) -> None:
        """Stop the background run (at its next step) and drop any queued one."""
        with self._lock:
            self._next = None
            self.queued = ""
            if self.running:
                self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background run (and any queued after it) has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def handle_cancel(self, _request: Any) -> None:
        self.cancel()

    # -- for subclasses -----------------------------------------------------------------------

    def run_now(self, task: str, body: Body) -> None:
        """Run ``body`` in this thread (a call from code); errors propagate."""
        if self.running:
            raise LensError(
                f"{type(self).__name__}: a {self.task} started from the widget is running "
                f"({self.progress:.0%}): wait for it (.wait()) or stop it (.cancel()) first."
            )
        self._execute(task, body, raise_errors=True)

    def run_in_background(self, task: str, body: Body, *, queue_as: str | None = None) -> None:
        """Start ``body`` in a background thread. While a run is going: with ``queue_as`` (what
        the widget says is waiting), stop it and run this one next; without, refuse."""
        with self._lock:
            if self.running:
                if queue_as is None:
                    raise Refused(
                        f"refused: a {self.task} is running ({self.progress:.0%}); cancel it "
                        f"or wait for it to finish, then try again."
                    )
                self._next = (task, body, queue_as)
                self.queued = queue_as
                self._stop.set()
                return
            self._start(task, body)

    def _start(self, task: str, body: Body) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._background, args=(task, body), name=f"lenslab {task}", daemon=True
        )
        self._thread.start()

    def _background(self, task: str, body: Body) -> None:
        self._execute(task, body, raise_errors=False)
        with self._lock:
            queued, self._next = self._next, None
            self.queued = ""
            if queued is not None:
                self._start(queued[0], queued[1])

    def _execute(self, task: str, body: Body, *, raise_errors: bool) -> None:
        self._started = time.monotonic()
        self._edits_at_start = _edits_of(getattr(self, "_model", None))
        with self.hold_sync():
            self.task, self.busy, self.error, self.outcome = task, True, "", ""
            self.progress, self.eta = 0.0, -1.0
        try:
            body(self._step)
            self.outcome = f"{task} done"
        except Cancelled:
            self.outcome = f"{task} cancelled at {self.progress:.0%}"
        except BaseException as problem:
            self.error = f"{type(problem).__name__}: {problem}"
            self.outcome = f"{task} failed"
            if raise_errors or not isinstance(problem, Exception):
                raise
        finally:
            with self.hold_sync():
                self.task, self.busy, self.eta = "", False, -1.0

    def _step(self, done: int, total: int) -> None:
        """Report ``done`` of ``total``; raises Cancelled once the run was asked to stop."""
        if self._stop.is_set():
            raise Cancelled(f"{self.task} cancelled")
        if _edits_of(getattr(self, "_model", None)) != self._edits_at_start:
            raise LensError(
                f"{self.task} stopped: the model's persistent edits changed while it ran "
                "(model.edit(inplace=True) or model.clear_edits() in another cell), so its "
                "results would mix two models. Run it again."
            )
        self.report(done, total)

    def report(self, done: int, total: int) -> None:
        """Progress and time left, ``done`` of ``total`` (never raises)."""
        fraction = min(1.0, done / total) if total > 0 else 0.0
        elapsed = time.monotonic() - self._started
        eta = elapsed / fraction * (1.0 - fraction) if fraction > 0 else -1.0
        with self.hold_sync():
            self.progress, self.eta = fraction, round(eta, 1)

    def stopping(self) -> bool:
        """Whether the current run was asked to stop (for bodies that poll)."""
        return self._stop.is_set()

    def _settled(self) -> bool:
        return not self.running
