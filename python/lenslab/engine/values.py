"""Per-invoke views of batched module values, and the checks a replacement must pass.

Several invokes share one batched forward; each invoke owns a contiguous block of batch rows.
A view narrows every tensor whose first dimension is the batch to those rows (a real view, so
in-place edits reach the model); a replacement is spliced back into the full batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import EditError
from .saving import OutputTuple


def _map(value: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """Apply ``fn`` to every tensor inside tuples, lists, dicts and model outputs."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return OutputTuple(_map(v, fn) for v in value)
    if isinstance(value, list):
        return [_map(v, fn) for v in value]
    if isinstance(value, dict):
        mapped = {k: _map(v, fn) for k, v in value.items()}
        return mapped if type(value) is dict else _rebuild(value, mapped)
    return value


def _rebuild(original: Any, fields: dict[str, Any]) -> Any:
    try:
        return type(original)(**fields)
    except TypeError:
        return fields


def view(value: Any, rows: slice | None, batch: int) -> Any:
    """What one invoke sees of ``value``: its own batch rows, batch dimension kept."""
    if rows is None:
        if isinstance(value, tuple) and type(value) is tuple:
            return OutputTuple(value)
        return value

    def narrow(t: torch.Tensor) -> torch.Tensor:
        return t[rows] if t.dim() > 0 and t.shape[0] == batch else t

    return _map(value, narrow)


def splice(full: Any, rows: slice | None, batch: int, new: Any) -> Any:
    """``full`` with the rows of one invoke replaced by ``new`` (already shape-checked)."""
    if rows is None:
        return new
    if isinstance(full, torch.Tensor):
        if full.dim() == 0 or full.shape[0] != batch:
            return new
        return torch.cat([full[: rows.start], new, full[rows.stop :]], dim=0)
    if isinstance(full, (tuple, list)):
        parts = [splice(f, rows, batch, n) for f, n in zip(full, new)]
        return type(full)(parts) if not hasattr(full, "_fields") else type(full)(*parts)
    if isinstance(full, dict):
        merged = {k: splice(full[k], rows, batch, new[k]) if k in full else new[k] for k in new}
        return merged if type(full) is dict else _rebuild(full, merged)
    return new


def check_replacement(old: Any, new: Any, where: str) -> None:
    """Raise EditError unless ``new`` can stand in for ``old`` (same structure and shapes)."""
    if isinstance(old, torch.Tensor):
        if not isinstance(new, torch.Tensor):
            raise EditError(
                f"cannot set {where} to a {type(new).__name__}: the module produced a tensor "
                f"of shape {list(old.shape)}; assign a tensor of that shape."
            )
        if new.shape != old.shape:
            raise EditError(
                f"cannot set {where}: new value has shape {list(new.shape)} but the module "
                f"produced shape {list(old.shape)}. Assign a tensor of shape {list(old.shape)}, "
                "or edit part of it in place (e.g. value[:, -1] = v)."
            )
        if new.dtype != old.dtype:
            raise EditError(
                f"cannot set {where}: new value has dtype {new.dtype} but the module produced "
                f"{old.dtype}; convert it with .to({old.dtype})."
            )
        if new.device != old.device:
            raise EditError(
                f"cannot set {where}: new value is on {new.device} but the model runs on "
                f"{old.device}; move it with .to({str(old.device)!r})."
            )
        return
    if isinstance(old, (tuple, list)):
        if not isinstance(new, (tuple, list)) or len(new) != len(old):
            got = (
                f"{type(new).__name__} of length {len(new)}"
                if isinstance(new, (tuple, list))
                else type(new).__name__
            )
            raise EditError(
                f"cannot set {where}: the module returned a {type(old).__name__} of "
                f"{len(old)} items, got a {got}. To change one item, assign "
                f"{where}[i] = value or edit it in place."
            )
        for i, (o, n) in enumerate(zip(old, new)):
            check_replacement(o, n, f"{where}[{i}]")


def tensors_in(value: Any) -> list[torch.Tensor]:
    """Top-level tensors of a value (a tensor, or the tensors of a tuple/list)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []
