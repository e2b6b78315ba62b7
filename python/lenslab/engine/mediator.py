"""One invoke's body: where it waits in the forward, and what it may read and write.

A body reads ``module.output`` by parking on that module's hook until the forward reaches it;
while parked, the forward waits and the body may read and edit the value. Reading a module the
forward already passed returns what it produced (when the module was watched); editing one is
an error, raised at once, because the edit could no longer reach the result.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from greenlet import GreenletExit, getcurrent, greenlet

from ..errors import (
    EditError,
    InputError,
    LensWarning,
    ModuleNotCalledError,
    NotTracingError,
    OutOfOrderError,
    TraceStateError,
)
from .interleaver import Interleaver, Key, end_greenlet
from .registry import open_tracer
from .saving import OutputTuple
from .stacks import spawn
from .values import check_replacement, splice, tensors_in, view

if TYPE_CHECKING:
    from torch import nn

    from .handles import ModuleHandle

_bodies: dict[greenlet, list[Mediator]] = {}  # greenlet running a body -> its open mediators


def mediator_for(envoy: ModuleHandle, kind: str) -> Mediator:
    """The mediator of the body running here that traces ``envoy``'s model."""
    stack = _bodies.get(getcurrent())
    if stack:
        root = envoy._root._module
        for mediator in reversed(stack):
            if mediator.interleaver.root is root:
                return mediator
    tracer = open_tracer(envoy._root)
    if tracer is not None and tracer._inputs is None and not tracer._pending:
        raise InputError(
            f"{envoy._name}.{kind} needs inputs: this trace got none. Pass them to "
            "model.trace('prompt'), or read values inside tracer.invoke('prompt') blocks."
        )
    raise NotTracingError(
        f"{envoy._name}.{kind} is only available inside `with model.trace(...)` "
        "(or `model.generate(...)`), and, when the trace uses tracer.invoke(...), inside an "
        "invoke block. Move this line into the with-block."
    )


class _Slot:
    __slots__ = ("key", "label", "value")

    def __init__(self, key: Key, label: str, value: Any) -> None:
        self.key, self.label, self.value = key, label, value


class Mediator:
    """The body of one invoke, owning rows ``rows`` of the batch (None: the whole batch)."""

    def __init__(
        self,
        interleaver: Interleaver,
        rows: slice | None,
        body: Callable[[], None] | None = None,
    ) -> None:
        self.interleaver = interleaver
        self.rows = rows
        self.index = len(interleaver.mediators)
        self.step = 0
        self.edit = False  # a model.edit() body (run in every trace of the edited model)
        self.waiting: Key | None = None
        self.slot: _Slot | None = None
        self._body = body
        self._label = ""  # what the body is waiting for, for messages
        self._last_label: str | None = None  # the last value the forward handed this body
        self._held: list[tuple[str, torch.Tensor, int]] = []
        self.after_switch: Callable[[], None] | None = None  # run on the forward's side
        # A deferred body starts when the forward first reaches one of these modules (None: at
        # once), so that names bound by earlier invokes up to that point are visible to it.
        self.start_on: frozenset[nn.Module] | None = None
        self.deferred = body is not None  # runs on its own greenlet, inside the forward
        self.started = not self.deferred
        parent = interleaver.greenlet
        self.greenlet = getcurrent() if body is None else spawn(self._run_body, parent)
        interleaver.mediators.append(self)  # before activate(): abort() then finds it to close
        if body is None:  # runs inline on the caller's greenlet
            self.activate()

    # -- registration ------------------------------------------------------------------------

    def activate(self) -> None:
        _bodies.setdefault(self.greenlet, []).append(self)

    def deactivate(self) -> None:
        stack = _bodies.get(self.greenlet)
        if stack is not None:  # each step safe to repeat: an interrupt may cut this short
            if self in stack:
                stack.remove(self)
            if not stack:
                _bodies.pop(self.greenlet, None)

    def close(self) -> None:
        """Forget this body; end its greenlet if it is suspended mid-body."""
        self.deactivate()
        if self.deferred:
            end_greenlet(self.greenlet)

    # -- called on the forward's greenlet -------------------------------------------------------

    def start(self) -> None:
        """Run a deferred body up to its first request."""
        if not self.started:
            self.started = True
            self.greenlet.switch()
            if self.after_switch is not None:
                self.after_switch()
            if self.interleaver.wakeups:
                self.interleaver.wake()

    def deliver(self, key: Key, value: Any) -> Any:
        """Hand the body the value it waits for; return the value after its edits."""
        slot = _Slot(key, self._label, value)
        self.slot, self.waiting = slot, None
        self.greenlet.switch()
        if self.after_switch is not None:
            self.after_switch()
        if self.interleaver.wakeups:
            self.interleaver.wake()
        return slot.value

    def forward_finished(self) -> None:
        """Wake a deferred body still waiting, so its read raises ModuleNotCalledError."""
        if not self.started:
            self.start()
        elif self.deferred and self.waiting is not None:
            self.greenlet.switch()

    def _run_body(self) -> None:
        assert self._body is not None
        self.activate()
        try:
            self._body()
            self._check_held()
        except GreenletExit:
            raise
        except BaseException as error:
            self.interleaver.fail(error)
        finally:
            self.slot = self.waiting = None
            self.deactivate()

    # -- called by the body ---------------------------------------------------------------------

    def read(self, envoy: ModuleHandle, kind: str) -> Any:
        """The value of ``envoy.<kind>`` as this invoke sees it."""
        full = self._value(envoy, kind)
        il = self.interleaver
        if kind == "output":
            if self.rows is None and type(full) is not tuple:  # the common read: as it is
                return full
            value = view(full, self.rows, il.batch)
            if isinstance(value, OutputTuple):
                value._assign = functools.partial(self.write, envoy, kind)
            return value
        args, kwargs = full
        if kind == "inputs":
            return view((args, kwargs), self.rows, il.batch)
        return view(_first_input(args, kwargs, envoy), self.rows, il.batch)

    def write(self, envoy: ModuleHandle, kind: str, value: Any) -> None:
        """Replace ``envoy.<kind>`` for this invoke's rows."""
        key = self._key(envoy, kind)
        slot = self.slot
        label = f"{envoy._name}.{kind}"
        if slot is None or slot.key != key:
            if key in self.interleaver.values and key != self.interleaver.current:
                raise OutOfOrderError(
                    f"cannot set {label}: the forward pass already ran past it (it is at "
                    f"{self._last_label}). Edits must come in forward order: move this edit "
                    f"above the line that reads {self._last_label}."
                )
            self._value(envoy, kind)
            slot = self.slot
            assert slot is not None
        rows, batch = self.rows, self.interleaver.batch
        if kind == "output":
            check_replacement(view(slot.value, rows, batch), value, label)
            slot.value = splice(slot.value, rows, batch, value)
            return
        args, kwargs = slot.value
        if kind == "inputs":
            new_args, new_kwargs = _as_inputs(value, label)
            check_replacement(view(args, rows, batch), new_args, f"{label}[0]")
            kwargs = dict(kwargs)
            for name, new in new_kwargs.items():
                if name in kwargs:
                    check_replacement(view(kwargs[name], rows, batch), new, f"{label}[1][{name!r}]")
                    new = splice(kwargs[name], rows, batch, new)
                kwargs[name] = new
            slot.value = (splice(args, rows, batch, tuple(new_args)), kwargs)
            return
        if args:
            check_replacement(view(args[0], rows, batch), value, label)
            slot.value = ((splice(args[0], rows, batch, value), *args[1:]), kwargs)
        else:
            name = next(iter(kwargs))
            check_replacement(view(kwargs[name], rows, batch), value, label)
            slot.value = (args, {**kwargs, name: splice(kwargs[name], rows, batch, value)})

    def _key(self, envoy: ModuleHandle, kind: str) -> Key:
        module = envoy._module
        step = -1 if module in self.interleaver.unstepped else self.step
        return (module, "output" if kind == "output" else "input", step)

    def _value(self, envoy: ModuleHandle, kind: str) -> Any:
        il = self.interleaver
        module = envoy._module  # the key as in _key(), inline: every read comes here
        key = (
            module,
            "output" if kind == "output" else "input",
            -1 if module in il.unstepped else self.step,
        )
        slot = self.slot
        if slot is not None and slot.key == key:
            return slot.value
        if il.unattended and not il.finished:  # a passive body: run it all now (passive.py)
            il.run_here()
        if il.skips is not None:
            il.skips.check_read(self, module, key[2], f"{envoy._name}.{kind}")
        if key in il.values and key != il.current:  # already passed (and it was watched)
            value = il.values[key]
            if not (type(value) is torch.Tensor and value.is_inference()):  # the common read
                self._hold(f"{envoy._name}.{kind}", value)
            return value
        if not self._wait(key, f"{envoy._name}.{kind}"):
            if il.failure is not None:  # another body (a model.edit()) failed: that is the error
                raise il.failure
            raise self._never(envoy, kind)
        assert self.slot is not None
        return self.slot.value

    def _wait(self, key: Key, label: str) -> bool:
        """Park until the forward produces ``key``; False if it finishes first."""
        il = self.interleaver
        if il.finished:
            return False
        il.watch(key[0], key[1])
        self.waiting, self._label = key, label
        self._yield()
        slot = self.slot
        if slot is None or slot.key != key:
            return False
        self._last_label = slot.label
        return True

    def reach_step(self, step: int) -> bool:
        """Advance to the start of generation step ``step``; False if the run ends before."""
        il = self.interleaver
        if il.step > step:
            raise OutOfOrderError(
                f"step {step} has already run (the run is at step {il.step}); loops over "
                "tracer.iter[...] must ask for steps in increasing order."
            )
        if il.step == step or not il.counts_steps:  # a single forward: a module's calls
            return True
        return self._wait((il.root, "input", step), f"step {step}")

    def _yield(self) -> None:
        """Give the forward control until it hands this body a value (or finishes)."""
        self._check_held()
        if self.slot is not None:
            self._hold(self.slot.label, self.slot.value)
        self.slot = None
        self.interleaver.resume()
        if self._held:
            self._held = [(label, t, t._version) for label, t, _ in self._held]

    def finish(self) -> None:
        """The inline body is done: let the forward run to its end."""
        if self._held:
            self._check_held()
        self.slot = None
        self.waiting = None

    # -- in-place edits of values the forward already used ---------------------------------------

    def _hold(self, label: str, value: Any) -> None:
        for tensor in tensors_in(value):
            # Inference-mode tensors keep no version counter, so their edits cannot be caught.
            if not tensor.is_inference():
                self._held.append((label, tensor, tensor._version))

    def _check_held(self) -> None:
        """Warn about values edited in place after the forward used them (nnsight allows it:
        the user changes their own copy), once per edit."""
        held = self._held
        for index, (label, tensor, version) in enumerate(held):
            if tensor._version != version:
                held[index] = (label, tensor, tensor._version)
                warn_at_user_line(
                    f"{label} was edited in place after the forward pass had already used it, "
                    "so the edit cannot reach the model: only your copy changed. To change "
                    "what the model computes, make the edit before reading any later module "
                    "(or assign the module's .output); to silence this, .clone() the value "
                    "first."
                )

    def _never(self, envoy: ModuleHandle, kind: str) -> ModuleNotCalledError:
        label = f"{envoy._name}.{kind}"
        il = self.interleaver
        if self.step > 0 and not il.counts_steps:
            made = il.calls_made(envoy._module, "output" if kind == "output" else "input")
            times = f"ran {made} time{'s' if made != 1 else ''}" if made else "never ran"
            return ModuleNotCalledError(
                f"{label} at call {self.step} was never produced: in this forward "
                f"{envoy._name} {times}. In a single forward, "
                "tracer.iter[i] and .next() count a module's repeated calls; a generation's "
                "steps come from model.generate(..., max_new_tokens=...)."
            )
        if self.step > self.interleaver.step:
            return ModuleNotCalledError(
                f"{label} at step {self.step} was never produced: the run ended after step "
                f"{self.interleaver.step}."
            )
        if self._last_label is None:
            return ModuleNotCalledError(
                f"{label} was never produced: the forward pass ran to its end without calling "
                f"{envoy._name}. This model's forward does not use that module; print(model) "
                "shows the modules and their order."
            )
        return ModuleNotCalledError(
            f"{label} was not produced after {self._last_label}, which this body read first: "
            f"either {envoy._name} runs earlier in the forward pass (read it before "
            f"{self._last_label}), or this model's forward never calls it."
        )


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any], envoy: ModuleHandle) -> Any:
    if args:
        return args[0]
    if kwargs:
        return next(iter(kwargs.values()))
    raise TraceStateError(f"{envoy._name} was called with no inputs, so .input has no value.")


def _as_inputs(value: Any, label: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], (tuple, list))
        and isinstance(value[1], dict)
    ):
        return tuple(value[0]), value[1]
    if isinstance(value, tuple) and len(value) == 2:
        args, kwargs = value
        wrong = (
            f"its first item (the positional arguments) is a {type(args).__name__}, not a tuple"
            if not isinstance(args, (tuple, list))
            else f"its second item (the keyword arguments) is a {type(kwargs).__name__}, not a dict"
        )
        raise EditError(
            f"cannot set {label}: it takes (args, kwargs), and {wrong}. Write "
            f"{label} = ((x, *args[1:]), kwargs), or set the first argument alone with "
            f"{label[: -len('inputs')]}input = x."
        )
    raise EditError(
        f"cannot set {label}: it takes (args, kwargs), a tuple of two items; got a "
        f"{type(value).__name__}{f' of {len(value)} items' if isinstance(value, tuple) else ''}."
        f" To set the first argument alone, use {label[: -len('inputs')]}input = x."
    )


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warn_at_user_line(message: str) -> None:
    """A LensWarning attributed to the innermost line outside lenslab (the user's code)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    registry = frame.f_globals.setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        message,
        LensWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
        registry=registry,
    )
