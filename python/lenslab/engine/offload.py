"""Accelerate-offloaded models: real weights for the user's reads, stand-ins for scans.

accelerate's ``AlignDevicesHook`` keeps an offloaded module's weights on ``meta`` and, before
each forward, copies them in from its ``weights_map`` (CPU tensors, or safetensors files on
disk). Under a scan's fake tensors that read cannot work (safetensors builds tensors from raw
storages, which fake tensors cannot wrap; tied-weight bookkeeping calls ``data_ptr()``), and
it would cost a full read of the weights for a run that only wants shapes. So during a scan,
each offloading hook stops offloading and its module gets fake weights of the right shape on
the hook's execution device; the scan puts the module's tensors back afterwards, and this
puts the hooks back.

Outside its own forward an offloaded module's weights are ``meta`` tensors: torch ops with them
raise, or, in place (``h.add_(w)``), silently do nothing. So a weight the user reads through an
envoy (``model.layers[20].mlp.up_proj.weight``) is read from the offload instead, on the
device the module computes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def offloading_hooks(model: nn.Module) -> list[tuple[nn.Module, Any]]:
    """Each module with an offloading accelerate hook, with that hook; empty for others."""
    return [found for module in model.modules() for found in offloading_hooks_of(module)]


@contextmanager
def stand_in_weights(hooks: list[tuple[nn.Module, Any]]) -> Iterator[None]:
    """Inside a ``FakeTensorMode``: fake weights for offloaded modules, nothing read from disk.

    The caller restores the modules' ``_parameters``/``_buffers``; this restores the hooks.
    """
    try:
        for module, hook in hooks:
            hook.offload = False
            device = hook.execution_device
            for name, tensor in _offloaded_tensors(module, hook):
                owner, _, leaf = name.rpartition(".")
                holder = module.get_submodule(owner) if owner else module
                fake = torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
                table = holder._parameters if leaf in holder._parameters else holder._buffers
                table[leaf] = fake
        yield
    finally:
        for _, hook in hooks:
            hook.offload = True


def _offloaded_tensors(module: nn.Module, hook: Any) -> list[tuple[str, torch.Tensor]]:
    tensors = list(module.named_parameters(recurse=hook.place_submodules))
    if hook.offload_buffers:
        tensors += list(module.named_buffers(recurse=hook.place_submodules))
    return tensors


def offloaded_value(module: nn.Module, name: str, value: Any) -> Any:
    """``value`` (``module.<name>``), or, when the offload holds it as ``meta``, the real tensor."""
    if not isinstance(value, torch.Tensor) or value.device.type != "meta":
        return value
    for owner, hook in offloading_hooks_of(module):
        if owner is module and name in hook.weights_map:
            stored = hook.weights_map[name]
            return stored.to(device=hook.execution_device, dtype=value.dtype)
    return value


def offloading_hooks_of(module: nn.Module) -> list[tuple[nn.Module, Any]]:
    """The offloading accelerate hooks attached to ``module`` itself (not its submodules)."""
    hook = getattr(module, "_hf_hook", None)
    parts = getattr(hook, "hooks", None) or (hook,)  # SequentialHook holds several
    return [
        (module, part)
        for part in parts
        if getattr(part, "offload", False) and getattr(part, "weights_map", None) is not None
    ]
