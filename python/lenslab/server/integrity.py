"""The hosted model's identity, taken before and after each job and compared.

Names, flags and hook counts are not enough: a parameter-free module swapped in at the same
path (``act_fn`` -> ``ReLU``) keeps every name. So the snapshot records *which object* sits at
every module path, and for every parameter and buffer its identity, version counter (bumped by
every in-place write), shape, dtype, device, requires_grad, storage address and a few sampled
values (for bulk writes that bypass the version counter); plus the hooks, the config, the
tokenizer and torch's process-wide switches. Any difference means the worker restarts from the
weights on disk before the next job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_HOOKS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


@dataclass(frozen=True)
class Snapshot:
    """What a job must leave as it found it."""

    modules: dict[str, tuple[Any, ...]]
    tensors: dict[str, tuple[Any, ...]]
    other: dict[str, Any]


SAMPLES = 16


def _sample(t: torch.Tensor) -> bytes:
    """The exact bytes of a few evenly spread elements: a write through ``.data`` or storage
    bumps no version counter, but a bulk one (``.data.zero_()``) changes these."""
    flat = t.detach().reshape(-1)
    if flat.numel() == 0 or flat.device.type == "meta":
        return b""
    count = min(flat.numel(), SAMPLES)
    where = torch.arange(count, device=flat.device) * (flat.numel() - 1) // max(count - 1, 1)
    return bytes(flat[where].contiguous().view(torch.uint8).cpu().tolist())


def _tensor(t: torch.Tensor) -> tuple[Any, ...]:
    return (
        id(t),
        t._version,
        tuple(t.shape),
        t.dtype,
        str(t.device),
        t.requires_grad,
        t.data_ptr(),
        t.grad is None,
        _sample(t),
    )


def _module(m: nn.Module) -> tuple[Any, ...]:
    hooks = tuple(tuple(map(id, getattr(m, name, {}).values())) for name in _HOOKS)
    return (id(m), type(m), m.training, hooks, tuple(sorted(vars(m))), tuple(m._modules))


def snapshot(model: Any) -> Snapshot:
    """The hosted model's state by identity (``model`` is the server's LanguageModel)."""
    module: nn.Module = model._module
    modules = {
        name or "(root)": _module(m) for name, m in module.named_modules(remove_duplicate=False)
    }
    tensors = {
        f"parameter {n}": _tensor(p) for n, p in module.named_parameters(remove_duplicate=False)
    }
    tensors.update(
        (f"buffer {n}", _tensor(b)) for n, b in module.named_buffers(remove_duplicate=False)
    )
    tok = model.tokenizer
    hooks = nn.modules.module
    generation = getattr(module, "generation_config", None)
    other = {
        "config": (id(module.config), module.config.to_json_string()),
        "generation config": generation is not None
        and (id(generation), generation.to_json_string()),
        "attention implementation": getattr(module.config, "_attn_implementation", None),
        "tokenizer": tok is not None
        and (
            id(tok),
            len(tok),
            tok.padding_side,
            tok.truncation_side,
            repr(tok.special_tokens_map),
        ),
        "classes": [sorted(vars(cls)) for cls in (torch.Tensor, nn.Parameter, nn.Module)],
        "global module hooks": [
            len(hooks._global_forward_hooks),
            len(hooks._global_forward_pre_hooks),
            len(hooks._global_backward_hooks),
        ],
        "grad mode": torch.is_grad_enabled(),
        "default dtype": torch.get_default_dtype(),
        "torch threads": torch.get_num_threads(),
    }
    return Snapshot(modules, tensors, other)


_FIELDS = ("identity", "version (written in place)", "shape", "dtype", "device", "requires_grad",
           "storage", "grad", "values (sampled)")  # fmt: skip
_MODULE_FIELDS = ("object (replaced)", "class", "training mode", "hooks", "attributes",
                  "children")  # fmt: skip


def differences(before: Snapshot, after: Snapshot, most: int = 8) -> list[str]:
    """What changed, in words, e.g. ``module model.layers.0.mlp.act_fn: object (replaced)``."""
    found: list[str] = []
    found += _compare(before.modules, after.modules, "module", _MODULE_FIELDS)
    found += _compare(before.tensors, after.tensors, "", _FIELDS)
    for key, value in before.other.items():
        if after.other.get(key) != value:
            found.append(f"{key} changed")
    if len(found) > most:
        found = [*found[:most], f"and {len(found) - most} more"]
    return found


def _compare(
    before: dict[str, tuple[Any, ...]],
    after: dict[str, tuple[Any, ...]],
    kind: str,
    fields: tuple[str, ...],
) -> list[str]:
    prefix = f"{kind} " if kind else ""
    found = [f"{prefix}{name}: removed" for name in before if name not in after]
    found += [f"{prefix}{name}: added" for name in after if name not in before]
    for name, old in before.items():
        new = after.get(name)
        if new is None or new == old:
            continue
        what = [field for field, a, b in zip(fields, old, new) if a != b]
        found.append(f"{prefix}{name}: {', '.join(what)}")
    return found
