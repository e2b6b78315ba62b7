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
it, the output it would have produced comes from its forward run on fake tensors (shapes
only, no compute; once per module and shapes of its inputs and weights), on a greenlet of its
own so that no body sees that run, with the module's and the arguments' state (a KV cache) put
back afterwards. A forward that fake tensors cannot run leaves the check to the next module
that uses the value.

A body paused at the module's own input (``x = layer.input; layer.skip(x)``) asks too late for
the wrapper (the call has already started): the module runs and its output is replaced, which
gives the same values.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

import torch
from greenlet import getcurrent, greenlet
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from ..errors import EditError, ModuleNotCalledError, OutOfOrderError, SkippedModuleError
from . import forwards
from .interleaver import Interleaver, _parents
from .values import check_replacement, splice, view

if TYPE_CHECKING:
    from .handles import ModuleHandle
    from .mediator import Mediator

_RUN = object()  # the wrapper's answer: run the real forward
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


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
            value = self._whole(module, call_next, args, kwargs)
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

    def _whole(
        self, module: nn.Module, real: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The module's output when every row is skipped now; ``_RUN`` otherwise."""
        il = self.interleaver
        if getcurrent() is not il.greenlet:
            return _RUN
        key = (module, -1 if module in il.unstepped else il.step)
        entries = self.entries.get(key)
        if not entries:
            return _RUN
        covering = _covering(entries, il.batch)
        if covering is None:
            return _RUN
        self._check_whole(module, real, args, kwargs, covering)
        self.done.add(key)
        values = [entry.value for entry in covering]
        return values[0] if len(values) == 1 else _cat(values)

    def _check_whole(
        self,
        module: nn.Module,
        real: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        entries: list[_Entry],
    ) -> None:
        """Each value against what the module would have returned (no row runs it)."""
        signature = (*_shapes(args), *_shapes(kwargs), *_shapes(list(module.parameters())))
        known = _expected.get(module)
        if known is None:
            known = _expected[module] = {}
        if signature not in known:
            if len(known) >= 16:
                known.clear()
            known[signature] = _fake_output(module, real, args, kwargs)
        expected = known[signature]
        if expected is None:
            return
        batch = self.interleaver.batch
        for entry in entries:
            check_replacement(view(expected, entry.rows, batch), entry.value, entry.label)

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
        """Refuse a read of a submodule (or a call inside the forward) of a module this invoke
        skipped at this step."""
        above = _parents(self.interleaver.root)
        if isinstance(module, nn.Module):
            outer = above.get(module)
        else:  # a call site (operations.py): the module whose forward it is in comes first
            outer = module.owner
            while not isinstance(outer, nn.Module):
                outer = outer.owner
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


def skip(mediator: Mediator, envoy: ModuleHandle, value: Any) -> None:
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


def _passed(mediator: Mediator, envoy: ModuleHandle) -> OutOfOrderError:
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


# What each skipped module returns on fake tensors, by the shapes of its inputs and weights:
# found once, for every later run (a trace that skips a module pays for it only the first time).
_expected: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


def _shapes(value: Any) -> list[Any]:
    """The shapes, dtypes and devices of the tensors in ``value``, in order."""
    if isinstance(value, torch.Tensor):
        return [(tuple(value.shape), value.dtype, value.device)]
    if isinstance(value, (tuple, list)):
        return [shape for item in value for shape in _shapes(item)]
    if isinstance(value, dict):
        return [(k, *_shapes(v)) for k, v in value.items()]
    return [type(value)]


def _fake_output(
    module: nn.Module, real: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """What ``real(*args, **kwargs)`` returns, on fake tensors; None if they cannot run it.

    With the module tree's hooks set aside (the user's too: for them the module did not run),
    and on a greenlet of its own (the run's hooks act only on the forward's greenlet). All it
    could change is put back: the module tree's parameters, buffers and attributes, and the
    attributes and items of the objects in the arguments (a KV cache appends to itself).
    """
    modules = [
        (m, dict(m._parameters), dict(m._buffers), dict(m.__dict__)) for m in module.modules()
    ]
    for m, *_ in modules:  # no hook sees this run, the user's own neither
        for name in _HOOK_DICTS:
            if name in m.__dict__:
                m.__dict__[name] = type(m.__dict__[name])()
    states: list[tuple[Any, Any]] = []
    _keep_state((args, kwargs), states, set(), depth=4)
    quiet = logging.getLogger("torch._subclasses.fake_tensor")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)

    def run() -> Any:
        try:
            with FakeTensorMode(allow_non_fake_inputs=True):
                return real(*args, **kwargs)
        except Exception:  # an op fake tensors cannot run: no check here
            return None

    try:
        return greenlet(run).switch()
    finally:
        quiet.setLevel(level)
        for m, parameters, buffers, attributes in modules:
            m._parameters.clear()
            m._parameters.update(parameters)
            m._buffers.clear()
            m._buffers.update(buffers)
            m.__dict__.clear()
            m.__dict__.update(attributes)
        for obj, state in reversed(states):
            if isinstance(obj, list):
                obj[:] = state
            elif isinstance(obj, dict):
                obj.clear()
                obj.update(state)
            else:
                obj.__dict__.clear()
                obj.__dict__.update(state)


def _keep_state(value: Any, states: list[tuple[Any, Any]], seen: set[int], depth: int) -> None:
    """Record the items and attributes of the mutable objects reachable from ``value``."""
    if depth < 0 or id(value) in seen or isinstance(value, (torch.Tensor, nn.Module)):
        return
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.dtype)):
        return
    seen.add(id(value))
    if isinstance(value, tuple):
        items: Any = value
    elif isinstance(value, list):
        states.append((value, list(value)))
        items = value
    elif isinstance(value, dict):
        states.append((value, dict(value)))
        items = value.values()
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        states.append((value, dict(value.__dict__)))
        items = value.__dict__.values()
    else:
        return
    for item in items:
        _keep_state(item, states, seen, depth - 1)


def _covering(entries: list[_Entry], batch: int) -> list[_Entry] | None:
    """The entries whose values make the whole batch's output, in row order; None if rows are
    missing (the module must run for them)."""
    for entry in reversed(entries):
        if entry.rows is None:
            return [entry]
    ordered = sorted(entries, key=lambda e: e.rows.start)  # type: ignore[union-attr]
    at = 0
    for entry in ordered:
        rows = entry.rows
        assert rows is not None
        if rows.start != at:
            return None
        at = rows.stop
    return ordered if at == batch else None


def _cat(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(values, dim=0)
    if isinstance(first, (tuple, list)):
        parts = [_cat([v[i] for v in values]) for i in range(len(first))]
        return type(first)(parts) if not hasattr(first, "_fields") else type(first)(*parts)
    return first
