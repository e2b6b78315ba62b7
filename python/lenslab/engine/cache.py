"""``tracer.cache()``: every chosen module's output (and optionally inputs), by module name.

For looking around a model without writing one ``.save()`` per module: the cache fills as the
forward passes each module and is a plain mapping after the block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModulePathError
from .values import _map

if TYPE_CHECKING:
    from .envoy import Envoy
    from .interleaver import Interleaver


@dataclass
class CacheEntry:
    """What one module produced: ``output`` / ``inputs`` at the first step, all steps after."""

    outputs: list[Any] = field(default_factory=list)
    all_inputs: list[Any] = field(default_factory=list)

    @property
    def output(self) -> Any:
        return self.outputs[0] if self.outputs else None

    @property
    def inputs(self) -> Any:
        return self.all_inputs[0] if self.all_inputs else None

    @property
    def input(self) -> Any:
        inputs = self.inputs
        if inputs is None:
            return None
        args, kwargs = inputs
        return args[0] if args else next(iter(kwargs.values()), None)


class Cache(dict[str, CacheEntry]):
    """Module name (as you write it, e.g. ``model.model.layers[3]``) to its CacheEntry."""

    def __init__(
        self,
        envoys: list[Envoy],
        inputs: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__((envoy._name, CacheEntry()) for envoy in envoys)
        self._envoys = envoys
        self._inputs = inputs
        self._device = device
        self._dtype = dtype

    def attach(self, interleaver: Interleaver) -> None:
        """Start filling from this run's forward."""
        for envoy in self._envoys:
            entry = self[envoy._name]
            interleaver.observe(envoy._module, "output", self._recorder(entry.outputs))
            if self._inputs:
                interleaver.observe(envoy._module, "input", self._recorder(entry.all_inputs))

    def _recorder(self, into: list[Any]) -> Any:
        def record(step: int, value: Any) -> None:
            into.append(_map(value, self._convert))

        return record

    def _convert(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.detach()
        if self._device is not None or self._dtype is not None:
            tensor = tensor.to(device=self._device, dtype=self._dtype)
        return tensor


def chosen_envoys(root: Envoy, modules: Iterable[Envoy | str] | None) -> list[Envoy]:
    """Envoys for ``modules`` (envoys or names); every module of the model when None."""
    walked = list(_walk(root, ""))
    if modules is None:
        return [envoy for _, envoy in walked]
    by_name = {envoy._name: envoy for _, envoy in walked}
    by_path = dict(walked)
    chosen = []
    for module in modules:
        if isinstance(module, str):
            found = by_name.get(module) or by_path.get(module)
            if found is None:
                raise ModulePathError(
                    f"tracer.cache() got {module!r}, which names no module of this model; "
                    "use names like 'model.model.layers[3]' or envoys like model.model.layers[3]."
                )
            chosen.append(found)
        else:
            chosen.append(module)
    return chosen


def _walk(envoy: Envoy, path: str) -> Iterable[tuple[str, Envoy]]:
    """(torch dotted path, envoy) for a module and everything below it."""
    yield path, envoy
    for name in envoy._module._modules:
        yield from _walk(envoy._child(name), f"{path}.{name}" if path else name)
