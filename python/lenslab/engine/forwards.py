"""The one owner of a module instance's ``forward`` while traces change what it runs.

Why one owner: torch runs whatever ``module.forward`` is when a call starts, so ``.skip``
(skipping.py) and ``.source`` (operations.py) put an instance attribute over it. When each
saved and put back that attribute on its own, they undid one another, silently: a ``.source``
twin installed over a skip wrapper dropped the skip, one thread's trace ending took away the
skip another thread's trace still needed, and a wrapper that had captured the other's function
at install time kept calling it, or was put back, after it had gone.

So each module (and attribute) gets one dispatcher while anyone needs it, holding

- at most one replacement of the base function (``.source``'s rewritten twin), and
- wrapping layers, ``layer(call_next, *args, **kwargs)`` (skips; each trace adds its own),
  always outside the replacement, whatever order they arrived in.

It is installed when the first override arrives and the attribute it found is put back exactly
(or deleted) when the last leaves. Changes happen under a lock and swap whole tuples, so a
forward already inside the dispatcher finishes with the set it started with.

accelerate's hooks keep the real forward as ``_old_forward`` behind their own ``forward``
(which loads offloaded weights): a skip overrides ``forward``, so a skipped module's weights are
never loaded; ``.source`` overrides ``_old_forward``, where the code it rewrites lives.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

Layer = Callable[..., Any]  # layer(call_next, *args, **kwargs) -> the module's output

_lock = threading.Lock()
_MISSING = object()
_dispatchers: weakref.WeakKeyDictionary[nn.Module, dict[str, _Dispatcher]] = (
    weakref.WeakKeyDictionary()
)


class _Dispatcher:
    """What ``module.<attr>`` is while overridden: the layers around the (replaced) base."""

    def __init__(self, module: nn.Module, attr: str) -> None:
        self._module = weakref.ref(module)  # the module's __dict__ holds this: no cycle
        self.attr = attr
        self.previous = module.__dict__.get(attr, _MISSING)
        self.replacement: Callable[..., Any] | None = None
        self.layers: tuple[Layer, ...] = ()  # first added innermost

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        layers, call = self.layers, self.__wrapped__
        for layer in layers:
            call = partial(layer, call)
        return call(*args, **kwargs)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        """The function the layers wrap (so ``inspect.signature`` sees the real parameters)."""
        replacement = self.replacement
        if replacement is not None:
            return replacement
        if self.previous is not _MISSING:
            return self.previous  # type: ignore[no-any-return]
        module = self._module()
        return getattr(type(module), self.attr).__get__(module)  # type: ignore[no-any-return]


class Override:
    """One layer, or the replacement, on one module's ``forward`` (or ``_old_forward``).

    Made first and applied after, so that whoever holds it can always remove it, even if an
    interrupt lands in between. ``apply`` and ``remove`` may each be called again.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        layer: Layer | None = None,
        replacement: Callable[..., Any] | None = None,
        attr: str = "forward",
    ) -> None:
        if (layer is None) == (replacement is None):
            raise TypeError("an Override is a layer or a replacement, exactly one of them")
        self.module, self.attr = module, attr
        self.layer, self.replacement = layer, replacement
        self._on = False

    def apply(self) -> None:
        with _lock:
            if self._on:
                return
            module, attr = self.module, self.attr
            table = _dispatchers.setdefault(module, {})
            dispatcher = table.get(attr)
            if self.replacement is not None and dispatcher and dispatcher.replacement is not None:
                raise RuntimeError(f"{type(module).__name__}.{attr} is already replaced")
            if dispatcher is None:
                dispatcher = table[attr] = _Dispatcher(module, attr)
                module.__dict__[attr] = dispatcher
            if self.replacement is not None:
                dispatcher.replacement = self.replacement
            else:
                dispatcher.layers = (*dispatcher.layers, self.layer)  # type: ignore[arg-type]
            self._on = True

    def remove(self) -> None:
        with _lock:
            if not self._on:
                return
            self._on = False
            module, attr = self.module, self.attr
            table = _dispatchers.get(module, {})
            dispatcher = table.get(attr)
            if dispatcher is None:
                return
            if self.replacement is not None:
                dispatcher.replacement = None
            else:
                layers = list(dispatcher.layers)
                layers.pop(next(i for i, f in enumerate(layers) if f is self.layer))
                dispatcher.layers = tuple(layers)
            if dispatcher.replacement is not None or dispatcher.layers:
                return
            del table[attr]
            if not table:
                _dispatchers.pop(module, None)
            if module.__dict__.get(attr) is not dispatcher:
                return  # replaced since by someone else: theirs to put back
            if dispatcher.previous is _MISSING:
                del module.__dict__[attr]
            else:
                module.__dict__[attr] = dispatcher.previous


def overridden(module: nn.Module) -> bool:
    """Whether any override is on ``module`` now (for tests and leak checks)."""
    with _lock:
        return bool(_dispatchers.get(module))
