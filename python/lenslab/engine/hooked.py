"""``envoy(x, hook=True)``: call a module from a trace body the way the model's forward would.

A plain ``model.transformer.h[0](x)`` inside a block is just torch: the trace's hooks act only
on the model's own forward. With ``hook=True`` the call runs as a small run of its own, in
which the model's ``model.edit()`` interventions run on the modules they name, so a module
called by hand behaves as the edited model's module does. An edit that names a module this
call never reaches simply does not apply to it. The calling body's own reads still see the
model's forward.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch
from greenlet import getcurrent

from ..errors import ModuleNotCalledError
from .interleaver import Interleaver, Run
from .mediator import Mediator, _bodies

if TYPE_CHECKING:
    from .envoy import Envoy


def hooked_call(envoy: Envoy, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``envoy``'s module on ``args`` with the model's edits; a plain call outside a trace."""
    module = envoy._module
    edits = getattr(envoy._root, "_edits", ())
    if not edits or not _in_trace(envoy):
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


def _in_trace(envoy: Envoy) -> bool:
    root = envoy._root._module
    return any(m.interleaver.root is root for m in _bodies.get(getcurrent(), ()))


def _batch_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.shape[0] if value.dim() > 0 else 1
    return 1
