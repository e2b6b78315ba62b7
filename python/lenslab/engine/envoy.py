"""Envoy: a module as seen from a trace, mirroring the real module tree.

``model.model.layers[5].mlp`` walks the wrapped model's tree with the same attribute names and
indices as the real modules; ``.output`` / ``.input`` / ``.inputs`` read (and, assigned, replace)
what that module produces or receives in the running trace. Envoys hold no trace state, so one
tree serves every trace, thread and invoke.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ..errors import DeviceError, ModulePathError
from . import operations, skipping
from .hooked import hooked_call
from .mediator import mediator_for
from .offload import offloaded_value
from .operations import SourceView

_SEQUENCES = (nn.ModuleList, nn.Sequential)


class Envoy:
    """A module of a traced model; attribute access and ``[i]`` follow the module tree."""

    # Set on a root built with ``rename=``: envoy path -> {alias: dotted path below it}.
    _aliases: dict[str, dict[str, str]] | None = None

    def __init__(
        self, module: nn.Module, name: str, root: Envoy | None = None, path: str = "model"
    ) -> None:
        self._module = module
        self._name = name  # how the user writes it, e.g. "model.model.layers[5]"
        self.path = path  # nnsight's dotted form of the same, e.g. "model.model.layers.5"
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

    @property
    def source(self) -> SourceView:
        """The calls inside this module's forward, each a point with ``.output`` / ``.input``.

        ``print(envoy.source)`` shows the forward with each call's name (nnsight's names, e.g.
        ``self_c_proj_0``); ``envoy.source.<name>.output`` reads or edits it in a trace.
        """
        return operations.source_of(self)

    def skip(self, value: Any) -> None:
        """Do not run this module: ``value`` is its output, for this invoke's rows (skipping.py)."""
        skipping.skip(mediator_for(self, "skip"), self, value)

    def next(self, steps: int = 1) -> Envoy:
        """Move the running body ``steps`` generation steps on: ``layer.next().output``."""
        mediator_for(self, "next()").step += steps
        return self

    # -- the module tree -----------------------------------------------------------------------

    def __call__(self, *args: Any, hook: bool = False, **kwargs: Any) -> Any:
        """Run the module directly on ``args`` (e.g. ``model.lm_head(h)``), outside the trace.

        ``hook=True`` inside a trace: the call runs the model's ``model.edit()`` interventions
        placed on this module and its submodules, as the model's own forward would (hooked.py).
        """
        if hook:
            return hooked_call(self, args, kwargs)
        return self._module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "_module" not in self.__dict__:
            raise AttributeError(name)
        module = self._module
        if name in module._modules and module._modules[name] is not None:
            # Kept as an attribute, so the next lookup never reaches __getattr__.
            child = self.__dict__[name] = self._child(name)
            return child
        aliased = self._alias(name)
        if aliased is not None:
            self.__dict__[name] = aliased
            return aliased
        try:
            value = getattr(module, name)
        except AttributeError:
            raise ModulePathError(self._missing_child(name)) from None
        return offloaded_value(module, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        """``envoy.name = module`` attaches ``module`` to the real tree, traceable like the rest
        (``model.layers[0].probe = nn.Linear(...)``, then ``model.layers[0].probe.output``)."""
        if (
            isinstance(value, nn.Module)
            and name[0] != "_"
            and "_module" in self.__dict__
            and not hasattr(type(self), name)
        ):
            setattr(self._module, name, value)
            self.__dict__.pop(name, None)  # the child envoy cached for a module it replaces
            self._children.pop(name, None)
            return
        object.__setattr__(self, name, value)

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
        aliased = self._alias(key) if isinstance(key, str) else None
        if aliased is not None:
            return aliased
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
        aliases = (self._root._aliases or {}).get(self.path, {})
        return sorted(set(super().__dir__()) | set(self._module._modules) | set(aliases))

    def __repr__(self) -> str:
        return repr(self._module)

    def _child(self, name: str) -> Envoy:
        child = self._children.get(name)
        if child is None:
            module = self._module._modules[name]
            assert module is not None
            shown = f"{self._name}[{name}]" if name.isdigit() else f"{self._name}.{name}"
            child = Envoy(module, shown, self._root, f"{self.path}.{name}")
            self._children[name] = child
        return child

    def _alias(self, name: str) -> Envoy | None:
        """The envoy ``name`` stands for here under the model's ``rename=``, if any."""
        aliases = self._root._aliases
        target = aliases.get(self.path, {}).get(name) if aliases else None
        if target is None:
            return None
        envoy: Envoy = self
        for part in target.split("."):
            envoy = envoy._child(part)
        return envoy

    def _lookup(self, name: str) -> Envoy | None:
        """The child module ``name`` (or an alias of a module below), None if there is none."""
        module = self._module._modules.get(name)
        if module is not None:
            return self._child(name)
        return self._alias(name)

    def get(self, path: str) -> Any:
        """The envoy (or value) at a dotted ``path`` below: ``model.get('transformer.h.0')``."""
        found: Any = self
        for part in path.split("."):
            if part:
                found = found[int(part)] if part.isdigit() else getattr(found, part)
        return found

    # -- the module tree as envoys, as nnsight lists it ---------------------------------------

    def modules(
        self, include_fn: Callable[[Envoy], bool] | None = None, names: bool = False
    ) -> list[Any]:
        """Every envoy from this one down, in torch's order (``include_fn`` filters them);
        ``names=True``: ``(path, envoy)`` pairs. Each envoy's ``.path`` names it."""
        found: list[Any] = []
        seen: set[int] = set()
        stack: list[Envoy] = [self]
        while stack:
            envoy = stack.pop()
            if id(envoy._module) in seen:
                continue
            seen.add(id(envoy._module))
            if include_fn is None or include_fn(envoy):
                found.append((envoy.path, envoy) if names else envoy)
            children = [envoy._child(n) for n, m in envoy._module._modules.items() if m is not None]
            stack.extend(reversed(children))
        return found

    def named_modules(self, include_fn: Callable[[Envoy], bool] | None = None) -> list[Any]:
        """``(path, envoy)`` for every envoy from this one down, e.g. ``("model.lm_head", ...)``."""
        return self.modules(include_fn, names=True)

    # -- torch's module methods, returning the envoy (the wrapper stays the wrapper) ------------

    def to(self, *args: Any, **kwargs: Any) -> Envoy:
        """``module.to(...)`` on the wrapped module; returns this envoy, not the torch module."""
        return self._apply_to_module("to", args, kwargs)

    def cuda(self, *args: Any, **kwargs: Any) -> Envoy:
        return self._apply_to_module("cuda", args, kwargs)

    def cpu(self) -> Envoy:
        return self._apply_to_module("cpu", (), {})

    def half(self) -> Envoy:
        return self._apply_to_module("half", (), {})

    def float(self) -> Envoy:
        return self._apply_to_module("float", (), {})

    def double(self) -> Envoy:
        return self._apply_to_module("double", (), {})

    def bfloat16(self) -> Envoy:
        return self._apply_to_module("bfloat16", (), {})

    def eval(self) -> Envoy:
        self._module.eval()
        return self

    def train(self, mode: bool = True) -> Envoy:
        self._module.train(mode)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Envoy:
        self._module.requires_grad_(requires_grad)
        return self

    def _apply_to_module(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Envoy:
        """Convert the weights; a lazily built model loads them first (meta tensors hold none)."""
        ready = getattr(self._root, "_ready", None)
        if ready is not None:
            ready()
        try:
            getattr(self._module, method)(*args, **kwargs)
        except (AssertionError, RuntimeError) as error:
            # The CPU build says "not compiled with CUDA", the CUDA build on a machine without a
            # GPU "Found no NVIDIA driver": decide by whether torch has a GPU, not by the words.
            wants_gpu = method == "cuda" or "cuda" in repr((args, kwargs)).lower()
            if not wants_gpu or torch.cuda.is_available():
                raise
            shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            raise DeviceError(
                f"{self._name}.{method}({shown}) needs a CUDA GPU, and torch has none here "
                f"({error}). Keep the model on the CPU, or run where a GPU is available."
            ) from error
        return self

    def _rebind(self, module: nn.Module) -> None:
        """Point this envoy (and every child made so far) at ``module``'s tree."""
        self._module = module
        self._targets.clear()
        operations.rebind_source(self)
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
            if ("attr", "source") in steps:  # a call inside a forward (operations.py)
                at = steps.index(("attr", "source"))
                modules = self._modules_at(steps[:at])
                targets = tuple(operations.site_targets(modules, steps[at + 1 :], kind))
            else:
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
                    child = envoy._lookup(arg)
                    if child is not None:
                        found.append(child)
                elif arg is None:
                    found.extend(envoy)
                elif isinstance(module, _SEQUENCES) and -len(module) <= arg < len(module):
                    found.append(envoy._child(str(arg % len(module))))
            envoys = found
        return [envoy._module for envoy in envoys]
