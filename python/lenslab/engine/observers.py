"""Listeners told when a trace closes (the lab sidebar uses one to show what it saved).

Nothing listens unless someone calls ``add_trace_listener``; a listener that raises is logged
and never breaks the user's trace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

TraceListener = Callable[[Any], None]

_lock = threading.Lock()
_listeners: list[TraceListener] = []
_log = logging.getLogger("lenslab")


def add_trace_listener(listener: TraceListener) -> Callable[[], None]:
    """Call ``listener(tracer)`` each time a trace closes; returns a function that removes it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def trace_closed(tracer: Any) -> None:
    """Tell every listener that ``tracer`` closed (its ``saved`` list is final)."""
    if not _listeners:  # the usual case, on every trace's path: no lock, no copy
        return
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(tracer)
        except Exception:  # a listener must never break a trace
            _log.warning("[lenslab] a trace listener failed", exc_info=True)
