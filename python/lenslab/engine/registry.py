"""The with-blocks open on each greenlet, for code that must find the trace it runs in.

Its own module, below tracer.py which fills it, so that lower modules (mediator.py, on its
error path) can ask whether a trace is open without importing the tracer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenlet import getcurrent, greenlet

if TYPE_CHECKING:
    from .handles import OpenTrace

_open: dict[greenlet, list[OpenTrace]] = {}  # open with-blocks, by the greenlet that opened them


def open_tracer(model: Any) -> OpenTrace | None:
    """The innermost trace of ``model`` open on this greenlet, if any."""
    for tracer in reversed(_open.get(getcurrent(), [])):
        if tracer.model is model:
            return tracer
    return None
