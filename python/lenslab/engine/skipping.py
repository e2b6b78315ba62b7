"""``module.skip(value)``: the module's forward does not run and ``value`` is its output.

Why a forward wrapper: torch picks the function a module call runs (``self.forward``) before
any hook, so a hook cannot stop it. ``skip`` therefore wraps the module's forward (a layer of
forwards.py, shared with other traces and ``.source``) while the forward is still before it, for
this trace only; the wrapper returns the value when every batch row is skipped at the current
step, and calls the real forward otherwise.

Rows of a batched forward: each invoke skips only its own rows. When every row is skipped
(one invoke, a promptless invoke, or all invokes skipping), the module does not run. When
some rows are not skipped, the module runs for the batch (other invokes need its result) and
the skipping invokes' rows of its output are replaced by their values, which is what each
would have seen alone. Either way, reading a submodule of a module the same invoke skipped is
a ``SkippedModuleError``: its rows of such values mean nothing.

Shapes: the value must have one row per batch row of the invoke (an ``EditError`` otherwise);
when the module runs for other rows it must also fit the output it produced. When no row runs
it there is no output to compare with, so a wrong trailing dimension surfaces in the next
module that uses it.

A body paused at the module's own input (``x = layer.input; layer.skip(x)``) asks too late for
the wrapper (the call has already started): the module runs and its output is replaced, which
gives the same values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from greenlet import getcurrent
from torch import nn

from ..errors import EditError, ModuleNotCalledError, OutOfOrderError, SkippedModuleError
from . import forwards
from .interleaver import Interleaver, _parents
from .values import check_replacement, splice, view

if TYPE_CHECKING:
    from .envoy import Envoy
    from .mediator import Mediator

_RUN = object()  # the wrapper's answer: run the real forward


class _Entry:
    __slots__ = ("label", "mediator", "rows", "value")

    def __init__(self, mediator: Mediator, rows: slice | None, value: Any, label: str) -> None:
        self.mediator, self.rows, self.value, self.label = mediator, rows, value, label


class Skips:
    """The skips of one run: which module, at which step, which rows, with what value."""

    def __init__(self, interleaver: Interleaver) -> None:
        self.interleaver = interleaver
        self.entries: dict[tuple[nn.Module, int], list[_Entry]] = {}
        self.done: set[tuple[nn.Module, int]] = set()  # answered by the wrapper: nothing to splice
        self.wrapped: dict[nn.Module, forwards.Override] = {}  # this run's skipping forwards

    # -- set-up, from a body ---------------------------------------------------------------

    def wrap(self, module: nn.Module) -> None:
        """Give ``module`` the skipping forward for the rest of this run."""
        if module in self.wrapped:
            return

        def layer(call_next: Any, *args: Any, **kwargs: Any) -> Any:
            value = self._whole(module)
            return call_next(*args, **kwargs) if value is _RUN else value

        override = self.wrapped[module] = forwards.Override(module, layer=layer)
        override.apply()

    def unwrap(self) -> None:
        """Take this run's skipping forwards off (the run is over)."""
        for override in self.wrapped.values():
            override.remove()
        self.wrapped.clear()

    def add(self, key: tuple[nn.Module, int], entry: _Entry) -> None:
        self.entries.setdefault(key, []).append(entry)

    # -- the forward's side ----------------------------------------------------------------

    def _whole(self, module: nn.Module) -> Any:
        """The module's output when every row is skipped now; ``_RUN`` otherwise."""
        il = self.interleaver
        if getcurrent() is not il.greenlet:
            return _RUN
        key = (module, -1 if module in il.unstepped else il.step)
        entries = self.entries.get(key)
        if not entries:
            return _RUN
        value = _assemble(entries, il.batch)
        if value is not _RUN:
            self.done.add(key)
        return value

    def replace(self, module: nn.Module, step: int, output: Any) -> Any:
        """``output`` with the skipping invokes' rows replaced; None if nothing to do."""
        key = (module, step)
        entries = self.entries.get(key)
        if not entries or key in self.done:
            return None
        batch = self.interleaver.batch
        for entry in entries:
            check_replacement(view(output, entry.rows, batch), entry.value, entry.label)
            output = splice(output, entry.rows, batch, entry.value)
        return output

    # -- reads, from a body ----------------------------------------------------------------

    def check_read(self, mediator: Mediator, module: nn.Module, step: int, label: str) -> None:
        """Refuse a read of a submodule of a module this invoke skipped at this step."""
        above = _parents(self.interleaver.root)
        outer = above.get(module)
        while outer is not None:
            for entry in self.entries.get((outer, step), ()):
                if entry.mediator is mediator or entry.rows is None:
                    raise SkippedModuleError(
                        f"cannot read {label}: {entry.label} skipped the module around it, so "
                        "its submodules do not run for this invoke. Read the skipped module's "
                        ".output (the value given to .skip) or .input instead, or drop the "
                        ".skip."
                    )
            outer = above.get(outer)


def skip(mediator: Mediator, envoy: Envoy, value: Any) -> None:
    """``envoy.skip(value)`` for ``mediator``'s rows: wait for the module's call, then skip it."""
    il = mediator.interleaver
    module = envoy._module
    step = -1 if module in il.unstepped else mediator.step
    label = f"{envoy._name}.skip(...)"
    rows = mediator.rows
    _check_rows(value, rows, il.batch, label)
    skips = il.skips
    if skips is None:
        skips = il.skips = Skips(il)
    in_key, out_key = (module, "input", step), (module, "output", step)
    slot = mediator.slot
    if out_key in il.values or (slot is not None and slot.key == out_key):
        raise _passed(mediator, envoy)
    if slot is None or slot.key != in_key:  # the call has not started: the wrapper can act
        if in_key in il.values and in_key != il.current:
            raise _passed(mediator, envoy)
        skips.wrap(module)
        il.watch(module, "output")
        if not mediator._wait(in_key, f"{envoy._name}.input"):
            if il.failure is not None:
                raise il.failure
            if mediator._last_label is not None:
                raise _passed(mediator, envoy)
            raise ModuleNotCalledError(
                f"cannot skip {envoy._name}: the forward pass ran to its end without calling "
                "it. This model's forward does not use that module; print(model) shows the "
                "modules and their order."
            )
    else:
        il.watch(module, "output")
    skips.add((module, step), _Entry(mediator, rows, value, label))


def _passed(mediator: Mediator, envoy: Envoy) -> OutOfOrderError:
    return OutOfOrderError(
        f"cannot skip {envoy._name}: the forward pass already ran past it (it is at "
        f"{mediator._last_label}). A .skip must come before reading any later module: move "
        "this line up."
    )


def _check_rows(value: Any, rows: slice | None, batch: int, label: str) -> None:
    """The value must have one row per batch row the invoke owns (its batch dimension)."""
    first = value
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    if not isinstance(first, torch.Tensor):
        raise EditError(
            f"{label} needs the module's output: a tensor (or a tuple starting with one), "
            f"got {type(value).__name__}."
        )
    want = len(range(batch)[rows]) if rows is not None else batch
    if first.dim() == 0 or first.shape[0] != want:
        raise EditError(
            f"{label}: the value has shape {list(first.shape)}, but this invoke has {want} "
            f"batch row(s); give a value of shape [{want}, ...] (e.g. the module's own .input "
            "or a tensor shaped like its .output)."
        )


def _assemble(entries: list[_Entry], batch: int) -> Any:
    """One output for the whole batch from the invokes' values; ``_RUN`` if rows are missing."""
    for entry in reversed(entries):
        if entry.rows is None:
            return entry.value
    ordered = sorted(entries, key=lambda e: e.rows.start)  # type: ignore[union-attr]
    at = 0
    for entry in ordered:
        rows = entry.rows
        assert rows is not None
        if rows.start != at:
            return _RUN
        at = rows.stop
    if at != batch:
        return _RUN
    values = [entry.value for entry in ordered]
    return values[0] if len(values) == 1 else _cat(values)


def _cat(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(values, dim=0)
    if isinstance(first, (tuple, list)):
        parts = [_cat([v[i] for v in values]) for i in range(len(first))]
        return type(first)(parts) if not hasattr(first, "_fields") else type(first)(*parts)
    return first
