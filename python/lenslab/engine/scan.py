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
from typing import Any

from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from .offload import offloading_hooks, stand_in_weights


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
