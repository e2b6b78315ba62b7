"""Scans on accelerate-offloaded models: stand-in weights instead of reads from the offload.

accelerate's ``AlignDevicesHook`` keeps an offloaded module's weights on ``meta`` and, before
each forward, copies them in from its ``weights_map`` (CPU tensors, or safetensors files on
disk). Under a scan's fake tensors that read cannot work (safetensors builds tensors from raw
storages, which fake tensors cannot wrap; tied-weight bookkeeping calls ``data_ptr()``), and
it would cost a full read of the weights for a run that only wants shapes. So during a scan,
each offloading hook stops offloading and its module gets fake weights of the right shape on
the hook's execution device; the scan puts the module's tensors back afterwards, and this
puts the hooks back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def offloading_hooks(model: nn.Module) -> list[tuple[nn.Module, Any]]:
    """Each module with an offloading accelerate hook, with that hook; empty for others."""
    found = []
    for module in model.modules():
        hook = getattr(module, "_hf_hook", None)
        for part in getattr(hook, "hooks", None) or (hook,):  # SequentialHook holds several
            if getattr(part, "offload", False) and getattr(part, "weights_map", None) is not None:
                found.append((module, part))
    return found


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
