"""Shape-only runs on fake tensors, which never touch (or keep) a parameter.

A fake tensor has a shape, dtype and device but no data, so a scan costs almost nothing and
shows what every module takes and returns. Some loaders (accelerate's offloading hooks) swap
parameters as a forward runs; under fake tensors that would leave fakes in the model (nnsight's
scan bug), so every module's parameter and buffer references are put back afterwards; offloaded
modules get fake weights instead of reads from their offload (engine/offload.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
)

from ..errors import ScanValueError
from .offload import offloading_hooks, stand_in_weights


def needs_values(error: BaseException, where: str = "this line") -> ScanValueError | None:
    """The scan user's error for an op that needs a fake tensor's data (an ``if`` on it,
    ``.item()``, a data-dependent shape); None for any other error. nnsight makes every fake
    tensor true instead, so such an ``if`` silently takes one branch."""
    if not isinstance(error, (DataDependentOutputException, DynamicOutputShapeException)):
        return None
    return ScanValueError(
        f"model.scan runs on fake tensors, which have shapes but no values, and {where} needs a "
        "tensor's values (an `if` or bool() on it, .item(), .tolist(), or an op whose output "
        "shape depends on the data). In a scan, branch on shapes and dtypes only; read values "
        "with model.trace(...)."
    )


_LIBRARIES = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parents[1]))


def ending_at_user_code(trace: TracebackType | None) -> TracebackType | None:
    """``trace`` cut after its last frame outside torch and lenslab: the user's line, so an
    error lenslab raises in place of torch's does not end in torch's internals."""
    last, entry = None, trace
    while entry is not None:
        if not str(Path(entry.tb_frame.f_code.co_filename).resolve()).startswith(_LIBRARIES):
            last = entry
        entry = entry.tb_next
    if last is not None:
        last.tb_next = None
    return trace


def shapes_only(call: Callable[[], Any], model: nn.Module) -> Callable[[], Any]:
    """``call`` run on fake tensors, leaving ``model`` exactly as it was."""

    def run() -> Any:
        kept = [
            (m, dict(m._parameters), dict(m._buffers), dict(m.__dict__)) for m in model.modules()
        ]
        quiet = logging.getLogger("torch._subclasses.fake_tensor")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # a failing op is the user's error, reported by us
        offloaded = offloading_hooks(model)
        try:
            with FakeTensorMode(allow_non_fake_inputs=True), stand_in_weights(offloaded):
                return call()
        finally:
            quiet.setLevel(level)
            for module, parameters, buffers, attributes in kept:
                _restore(module._parameters, parameters)
                _restore(module._buffers, buffers)
                _restore(module.__dict__, attributes)

    return run


def _restore(current: dict[str, Any], kept: dict[str, Any]) -> None:
    if current.keys() != kept.keys() or any(current[k] is not v for k, v in kept.items()):
        current.clear()
        current.update(kept)
