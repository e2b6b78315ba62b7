"""What the engine's lower modules use of the objects that higher modules hand down to them.

A run (interleaver.py) holds bodies (mediator.py); a skip (skipping.py) is set up by a body for
a module path (envoy.py); the registry (registry.py) lists open traces (tracer.py). The lower
module only needs a few attributes of each, so it names them by these small protocols instead of
importing the class above it: imports point one way, type-only ones included (checked by
tests/engine/test_layering.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

# (module, "output" | "input", step; -1 for unstepped). The module may also be a call site
# inside a forward (operations.py): it has attach / detach / owner instead of torch's hooks.
Key = tuple[nn.Module, str, int]


class ModuleHandle(Protocol):
    """A module path of a wrapped model, as an ``Envoy`` is to the run."""

    _module: nn.Module  # the torch module it stands for
    _name: str  # how the user writes it, e.g. "model.model.layers[5]"
    _root: Any  # the model wrapper (an Envoy too)


class Body(Protocol):
    """A block body waiting on the forward, as a ``Mediator`` is to the run."""

    started: bool
    edit: bool  # a model.edit() body
    deferred: bool  # runs on its own greenlet
    greenlet: Any  # the greenlet it runs on
    start_on: frozenset[nn.Module] | None
    waiting: Key | None

    def start(self) -> None: ...

    def deliver(self, key: Key, value: Any) -> Any: ...

    def forward_finished(self) -> None: ...

    def close(self) -> None: ...


class SkipTable(Protocol):
    """The skips of one run, as ``Skips`` is to the run."""

    def replace(self, module: nn.Module, step: int, output: Any) -> Any: ...

    def unwrap(self) -> None: ...

    def check_read(self, mediator: Any, module: nn.Module, step: int, label: str) -> None: ...


class OpenTrace(Protocol):
    """An open with-block of a model, as a ``Tracer`` is to the registry."""

    model: Any
    _inputs: Any  # what model.trace(...) was given (None: inputs come from invokes)
    _pending: list[Any]  # invoke bodies declared, not yet run

    def run_pending(self, method: str, options: dict[str, Any]) -> Any: ...
