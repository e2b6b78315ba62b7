"""``envoy(x, hook=True)``: call a module from a trace body the way the model's forward would.

A plain ``model.transformer.h[0](x)`` inside a block is just torch: the trace's hooks act only
on the model's own forward. With ``hook=True`` the call runs as a small run of its own, in
which the model's ``model.edit()`` interventions run on the modules they name, so a module
called by hand behaves as the edited model's module does. An edit that names a module this
call never reaches simply does not apply to it. The calling body's own reads still see the
model's forward.

The trace's other bodies see the call too, as in nnsight: a body already waiting for the
output (or input) of a module the call runs gets that value, and may edit it, as from the
forward (``l0.probe = Probe()``; an edit calls ``l0.probe(h, hook=True)``; a trace reads
``l0.probe.output``). Nothing else is kept of the call: a read that comes after it waits for
the forward's own call of that module, traced as usual. The model's edits are not handed the
call's values this way (the call's own run applies them): they stay for the forward's call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from greenlet import getcurrent

from ..errors import ModuleNotCalledError
from .interleaver import Interleaver, Key, Run
from .mediator import Mediator, _bodies

if TYPE_CHECKING:
    from .handles import ModuleHandle


def hooked_call(envoy: ModuleHandle, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``envoy``'s module on ``args`` with the model's edits; a plain call outside a trace."""
    module = envoy._module
    running = _running(envoy)
    if running is None:
        return module(*args, **kwargs)
    with _shared(running, module):
        return _edited_call(envoy, module, args, kwargs)


def _edited_call(
    envoy: ModuleHandle, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    edits = getattr(envoy._root, "_edits", ())
    if not edits:
        return module(*args, **kwargs)
    run = Run(lambda: module(*args, **kwargs), [None], _batch_size(args, kwargs))
    interleaver = Interleaver(envoy._root._module, run)
    try:
        for edit in edits:
            namespace = dict(edit.namespace)
            Mediator(interleaver, None, functools.partial(exec, edit.block.body, namespace))
        interleaver.resume()
        failure = interleaver.failure
        if failure is not None and not isinstance(failure, ModuleNotCalledError):
            raise failure
        return interleaver.result
    finally:
        interleaver.abort()


def _running(envoy: ModuleHandle) -> Interleaver | None:
    """The run of a trace of ``envoy``'s model whose body is calling here, if any."""
    root = envoy._root._module
    for mediator in reversed(_bodies.get(getcurrent(), ())):
        if mediator.interleaver.root is root:
            return mediator.interleaver
    return None


@contextlib.contextmanager
def _shared(il: Interleaver, module: torch.nn.Module) -> Iterator[None]:
    """While ``module`` runs: bodies of ``il`` waiting for its (or a submodule's) output or
    input get it, as from the forward (see the module docstring)."""
    if il.finished:
        yield
        return

    def on_output(mod: torch.nn.Module, args: Any, output: Any) -> Any:
        new = _offer(il, (mod, "output", _step(il, mod)), output)
        return None if new is output else new

    def on_input(mod: torch.nn.Module, args: Any, kwargs: Any) -> Any:
        value = (args, kwargs)
        new = _offer(il, (mod, "input", _step(il, mod)), value)
        return None if new is value else new

    handles = []
    for sub in module.modules():
        handles.append(sub.register_forward_pre_hook(on_input, with_kwargs=True))
        handles.append(sub.register_forward_hook(on_output))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _step(il: Interleaver, module: torch.nn.Module) -> int:
    return -1 if module in il.unstepped else il.step


def _offer(il: Interleaver, key: Key, value: Any) -> Any:
    """Hand ``value`` to the bodies waiting for ``key``; the value after their edits.

    The bodies run on their greenlets as from the forward's; for this call, the greenlet the
    hook runs on stands in for the forward's (each waiting body comes back here), and the
    bodies' greenlets end here too. The forward's own bookkeeping (its place, the keys it
    has traced) is left as it was.
    """
    bodies = [
        m
        for m in il.mediators
        if not m.edit and (m.waiting == key or (not m.started and key[0] in (m.start_on or ())))
    ]  # waiting for it, or to start at its module (an invoke's body)
    if il.finished or not bodies:
        return value
    here = getcurrent()
    above = set()  # here and the greenlets it returns to: they cannot become its children
    walk: Any = here
    while walk is not None:
        above.add(walk)
        walk = walk.parent
    forward, current = il.greenlet, il.current
    parents = [
        (m.greenlet, m.greenlet.parent)
        for m in il.mediators
        if m.deferred and m.greenlet not in above and not m.greenlet.dead
    ]
    il.greenlet = here
    for body, _ in parents:
        body.parent = here
    try:
        return il._deliver(key, value, False, bodies)
    finally:
        il.greenlet, il.current = forward, current
        for body, parent in parents:
            if not body.dead:
                body.parent = parent


def _batch_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.shape[0] if value.dim() > 0 else 1
    return 1
