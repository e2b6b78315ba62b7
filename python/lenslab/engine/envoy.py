"""Envoy: a module as seen from a trace, mirroring the real module tree.

``model.model.layers[5].mlp`` walks the wrapped model's tree with the same attribute names and
indices as the real modules; ``.output`` / ``.input`` / ``.inputs`` read (and, assigned, replace)
what that module produces or receives in the running trace. Envoys hold no trace state, so one
tree serves every trace, thread and invoke.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from torch import nn

from ..errors import ModulePathError
from .mediator import mediator_for

_SEQUENCES = (nn.ModuleList, nn.Sequential)


class Envoy:
    """A module of a traced model; attribute access and ``[i]`` follow the module tree."""

    def __init__(self, module: nn.Module, name: str, root: Envoy | None = None) -> None:
        self._module = module
        self._name = name  # how the user writes it, e.g. "model.model.layers[5]"
        self._root: Envoy = root if root is not None else self
        self._children: dict[str, Envoy] = {}
        self._by_index: dict[int, Envoy] = {}  # model.layers[i] is on every hot path
        self._targets: dict[tuple[Any, ...], tuple[tuple[nn.Module, str], ...]] = {}

    # -- values in a trace -------------------------------------------------------------------

    @property
    def output(self) -> Any:
        """What this module returned, exactly (a tensor, a tuple, a model output...)."""
        return mediator_for(self, "output").read(self, "output")

    @output.setter
    def output(self, value: Any) -> None:
        mediator_for(self, "output").write(self, "output", value)

    @property
    def input(self) -> Any:
        """The first argument this module was called with."""
        return mediator_for(self, "input").read(self, "input")

    @input.setter
    def input(self, value: Any) -> None:
        mediator_for(self, "input").write(self, "input", value)

    @property
    def inputs(self) -> Any:
        """``(args, kwargs)`` this module was called with."""
        return mediator_for(self, "inputs").read(self, "inputs")

    @inputs.setter
    def inputs(self, value: Any) -> None:
        mediator_for(self, "inputs").write(self, "inputs", value)

    def next(self, steps: int = 1) -> Envoy:
        """Move the running body ``steps`` generation steps on: ``layer.next().output``."""
        mediator_for(self, "next()").step += steps
        return self

    # -- the module tree -----------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the module directly on ``args`` (e.g. ``model.lm_head(h)``), outside the trace."""
        return self._module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "_module" not in self.__dict__:
            raise AttributeError(name)
        module = self._module
        if name in module._modules and module._modules[name] is not None:
            # Kept as an attribute, so the next lookup never reaches __getattr__.
            child = self.__dict__[name] = self._child(name)
            return child
        try:
            return getattr(module, name)
        except AttributeError:
            raise ModulePathError(self._missing_child(name)) from None

    def __getitem__(self, key: int | str | slice) -> Any:
        if type(key) is int and key in self._by_index:
            return self._by_index[key]
        module = self._module
        if isinstance(key, slice):
            return [self[i] for i in range(len(self))[key]]
        if isinstance(key, int) and isinstance(module, _SEQUENCES):
            size = len(module)
            if not -size <= key < size:
                last = f" ({self._name}[-1] is the last)" if size else ""
                raise ModulePathError(
                    f"{self._name}[{key}] does not exist: {self._name} holds {size} modules "
                    f"(indices 0-{size - 1}){last}."
                )
            child = self._child(str(key % size))
            if key >= 0:  # negative ones move when the list grows
                self._by_index[key] = child
            return child
        if isinstance(key, str) and key in module._modules:
            return self._child(key)
        kind = type(module).__name__
        raise ModulePathError(
            f"{self._name}[{key!r}] does not exist: {self._name} is a {kind}; "
            f"its children are {self._child_list()}."
        )

    def __len__(self) -> int:
        return len(self._module._modules)

    def __iter__(self) -> Iterator[Envoy]:
        for name in self._module._modules:
            yield self._child(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._module._modules))

    def __repr__(self) -> str:
        return repr(self._module)

    def _child(self, name: str) -> Envoy:
        child = self._children.get(name)
        if child is None:
            module = self._module._modules[name]
            assert module is not None
            shown = f"{self._name}[{name}]" if name.isdigit() else f"{self._name}.{name}"
            child = self._children[name] = Envoy(module, shown, self._root)
        return child

    def _rebind(self, module: nn.Module) -> None:
        """Point this envoy (and every child made so far) at ``module``'s tree."""
        self._module = module
        self._targets.clear()
        for name, child in self._children.items():
            child._rebind(module._modules[name])  # type: ignore[arg-type]

    def _child_list(self) -> str:
        names = list(self._module._modules)
        if not names:
            return "none (it is a leaf module)"
        if names[0].isdigit():
            return f"[0] to [{len(names) - 1}]"
        return ", ".join(names)

    def _missing_child(self, name: str) -> str:
        kind = type(self._module).__name__
        message = f"{self._name} ({kind}) has no module or attribute {name!r}; "
        message += f"its child modules are {self._child_list()}."
        close = difflib.get_close_matches(name, list(self._module._modules), n=1)
        if close:
            message += f" Did you mean {self._name}.{close[0]}?"
        return message

    def _watch_targets(
        self, steps: tuple[tuple[str, Any], ...], kind: str
    ) -> tuple[tuple[nn.Module, str], ...]:
        """(module, "output" | "input") pairs a source access ``self.<steps>.<kind>`` reads.

        Kept per envoy: every trace of a block asks again, and the tree stays put (like the
        envoys themselves; ``_rebind`` starts afresh).
        """
        key = (steps, kind)
        targets = self._targets.get(key)
        if targets is None:
            hook = "output" if kind == "output" else "input"
            targets = tuple((module, hook) for module in self._modules_at(steps))
            self._targets[key] = targets
        return targets

    def _modules_at(self, steps: tuple[tuple[str, Any], ...]) -> list[nn.Module]:
        """Modules a source path can reach from here (an index of None: every child)."""
        envoys: list[Envoy] = [self]
        for step, arg in steps:
            found: list[Envoy] = []
            for envoy in envoys:
                module = envoy._module
                if step == "attr":
                    if arg in module._modules and module._modules[arg] is not None:
                        found.append(envoy._child(arg))
                elif arg is None:
                    found.extend(envoy)
                elif isinstance(module, _SEQUENCES) and -len(module) <= arg < len(module):
                    found.append(envoy._child(str(arg % len(module))))
            envoys = found
        return [envoy._module for envoy in envoys]
