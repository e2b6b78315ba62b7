"""``.save()`` on traced values, without patching anything at import.

Values inside a lenslab trace are real tensors, already bound to the user's variables, so
``.save()`` is only a marker: it records the value on the running trace (what the lab sidebar
and remote execution report) and returns the value itself. For nnsight code to run unchanged,
``torch.Tensor`` (and transformers' ``ModelOutput``) carry a ``save`` method only while at least
one trace is open in the process; tuples a module returns come back as ``OutputTuple``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from . import gradients

T = TypeVar("T")

_lock = threading.Lock()
_open_traces = 0
_local = threading.local()


def save(value: T) -> T:
    """Mark ``value`` as a result of the running trace and return it unchanged."""
    stack: list[list[Any]] | None = getattr(_local, "saved", None)
    if stack:
        stack[-1].append(value)
    return value


def _save_method(self: T) -> T:
    return save(self)


class OutputTuple(tuple):
    """A module's tuple output, exactly as returned, plus ``.save()``.

    Inside a trace, ``module.output[i] = value`` replaces item ``i`` of the module's output
    (a new tuple is handed on; this one is unchanged, like any tuple).
    """

    _assign: Any = None  # set by the trace: called with the whole new tuple

    def save(self) -> OutputTuple:
        return save(self)

    def __setitem__(self, index: int, value: Any) -> None:
        if self._assign is None:
            raise TypeError("'tuple' object does not support item assignment")
        items = list(self)
        items[index] = value
        self._assign(tuple(items))


def _savable_classes() -> list[type]:
    classes: list[type] = [torch.Tensor]
    hf_generic = sys.modules.get("transformers.utils.generic")
    if hf_generic is not None:
        classes.append(hf_generic.ModelOutput)
    return classes


@contextmanager
def saving_enabled() -> Iterator[list[Any]]:
    """What nnsight code expects of traced values, for the duration of a trace: a ``.save()``
    method, and ``with loss.backward():`` (see gradients.py).

    Yields the list that collects this trace's saved values.
    """
    global _open_traces
    with _lock:
        if _open_traces == 0:
            for cls in _savable_classes():
                cls.save = _save_method  # type: ignore[attr-defined]
            torch.Tensor.backward = gradients.backward  # type: ignore[method-assign]
        _open_traces += 1
    stack = getattr(_local, "saved", None)
    if stack is None:
        stack = _local.saved = []
    saved: list[Any] = []
    stack.append(saved)
    try:
        yield saved
    finally:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is saved:
                del stack[i]
                break
        with _lock:
            _open_traces -= 1
            if _open_traces == 0:
                for cls in _savable_classes():
                    if cls.__dict__.get("save") is _save_method:
                        del cls.save  # type: ignore[attr-defined]
                torch.Tensor.backward = gradients._torch_backward  # type: ignore[method-assign]
