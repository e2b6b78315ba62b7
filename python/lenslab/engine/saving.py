"""``.save()`` on traced values, without patching anything at import.

Values inside a lenslab trace are real tensors, already bound to the user's variables, so
``.save()`` is only a marker: it records the value on the running trace (what the lab sidebar
and remote execution report) and returns the value itself. For nnsight code to run unchanged,
tensors (and transformers' ``ModelOutput``) have a ``save`` method while at least one trace is
open in the process (see ``_WhileTracing``); tuples a module returns come back as
``OutputTuple``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import MethodType
from typing import Any, TypeVar

T = TypeVar("T")

# The saved-values lists of the traces open in the process, by id: "any trace open?" is a
# dict's truth, and one list enters or leaves it in one step (an interrupt cannot split it).
_open_traces: dict[int, list[Any]] = {}
_local = threading.local()


def save(value: T) -> T:
    """Mark ``value`` as a result of the running trace and return it unchanged."""
    stack: list[list[Any]] | None = getattr(_local, "saved", None)
    if stack:
        stack[-1].append(value)
    return value


# The name rewritten block code calls ``save_any`` by (see rewrite.py); namespaces that run such
# code carry it.
SAVE_NAME = "__lenslab_save__"


def save_any(value: T) -> T:
    """``value.save()`` where ``value`` has its own ``save``, else ``save(value)``."""
    try:
        method = value.save  # type: ignore[attr-defined]
    except AttributeError:
        return save(value)
    return method()


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


class _WhileTracing:
    """A method classes carry only while some trace is open (instances see no attribute else).

    Installed once, at the first trace, and never removed: setting and deleting a class
    attribute on every trace would reset CPython's lookup caches of the class and all its
    subclasses each time, and Python 3.13 stops caching lookups on a class changed ~1000 times
    (every tensor attribute lookup then measured 1.8x slower, for the rest of the process).
    On the class itself it reads as the plain function, as library code walking
    ``dir(torch.Tensor)`` (torch.compile) expects (outside traces: ``on_class``, if given).
    """

    def __init__(
        self,
        name: str,
        during: Callable[..., Any],
        otherwise: Callable[..., Any] | None,
        on_class: Callable[..., Any] | None = None,
    ):
        self.name, self.during, self.otherwise = name, during, otherwise
        self.on_class = on_class

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        method = self.during if _open_traces else self.otherwise
        if instance is None:
            if self.on_class is not None and not _open_traces:
                return self.on_class
            return method or self.during
        if method is None:
            raise AttributeError(
                f"{type(instance).__name__!r} object has no attribute {self.name!r}: lenslab "
                f"adds .{self.name}() to values inside `with model.trace(...)` only."
            )
        return MethodType(method, instance)


_SAVE = _WhileTracing("save", save, None)
