"""``tracer.cache()``: every chosen module's output (and optionally inputs), by module name.

For looking around a model without writing one ``.save()`` per module: the cache fills as the
forward passes each module (after every edit, so it holds what the model really used) and is a
plain mapping after the block. A module appears once it has run; in a generation it holds one
entry per step. Keys are lenslab's names (``model.transformer.h[0]``); lookups also take
nnsight's dotted form (``model.transformer.h.0``), ``rename=`` aliases, and attribute access
(``cache.model.transformer.h[0].output``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from greenlet import getcurrent

from ..errors import CacheKeyError, InputError, ModulePathError
from .mediator import _bodies
from .values import _map, view

if TYPE_CHECKING:
    from .envoy import Envoy
    from .interleaver import Interleaver


@dataclass
class CacheEntry:
    """What one module produced in one forward pass (one generation step)."""

    output: Any = None
    inputs: Any = None  # (args, kwargs), with include_inputs=True

    @property
    def input(self) -> Any:
        """The first argument (positional, else keyword) the module was called with."""
        if self.inputs is None:
            return None
        args, kwargs = self.inputs
        return args[0] if args else next(iter(kwargs.values()), None)

    @property
    def outputs(self) -> list[Any]:
        """Every step's output: here the only one."""
        return [self.output]

    @property
    def all_inputs(self) -> list[Any]:
        return [self.inputs]


class CacheSteps(list[CacheEntry]):
    """A module that ran several times (generation steps): one CacheEntry per step, in order.

    ``.output`` / ``.input`` / ``.inputs`` are step 0's; ``.outputs`` lists every step's.
    """

    @property
    def output(self) -> Any:
        return self[0].output

    @property
    def inputs(self) -> Any:
        return self[0].inputs

    @property
    def input(self) -> Any:
        return self[0].input

    @property
    def outputs(self) -> list[Any]:
        return [entry.output for entry in self]

    @property
    def all_inputs(self) -> list[Any]:
        return [entry.inputs for entry in self]


class Cache(dict[str, Any]):
    """Module name (``model.model.layers[3]``) to its CacheEntry (CacheSteps: several steps)."""

    def __init__(
        self,
        root: Envoy,
        envoys: list[Envoy],
        *,
        outputs: bool = True,
        inputs: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        detach: bool = True,
        rows: slice | None = None,
    ) -> None:
        super().__init__()
        self._root = root
        self._envoys = envoys
        self._outputs, self._inputs = outputs, inputs
        self._device, self._dtype, self._detach = device, dtype, detach
        self._rows = rows  # the invoke's own batch rows, when made inside an invoke
        self._steps: dict[str, dict[int, CacheEntry]] = {}

    # -- filling ------------------------------------------------------------------------------

    def attach(self, interleaver: Interleaver) -> None:
        """Start filling from this run's forward."""
        for envoy in self._envoys:
            if self._outputs:
                interleaver.observe(
                    envoy._module, "output", self._recorder(envoy, "output", interleaver)
                )
            if self._inputs:
                interleaver.observe(
                    envoy._module, "input", self._recorder(envoy, "inputs", interleaver)
                )

    def _recorder(self, envoy: Envoy, field: str, interleaver: Interleaver) -> Any:
        name = envoy._name

        def record(step: int, value: Any) -> None:
            if self._rows is not None:
                value = view(value, self._rows, interleaver.batch)
            entries = self._steps.setdefault(name, {})
            entry = entries.get(step)
            if entry is None:
                entry = entries[step] = CacheEntry()
                if len(entries) == 1:
                    dict.__setitem__(self, name, entry)
                elif len(entries) == 2:
                    dict.__setitem__(self, name, CacheSteps(entries.values()))
                else:
                    dict.__getitem__(self, name).append(entry)
            setattr(entry, field, _map(value, self._convert))

        return record

    def _convert(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._detach:
            tensor = tensor.detach()
        device = self._device
        if device is not None and (tensor.device.type == "meta" or _is_fake(tensor)):
            device = None  # a scan's fake values stay where they are: nothing to copy
        if device is not None or self._dtype is not None:
            tensor = tensor.to(device=device, dtype=self._dtype)
        return tensor

    # -- lookups in any spelling ----------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        return dict.__getitem__(self, self._key(key))

    def __contains__(self, key: object) -> bool:
        try:
            self._key(key)
        except CacheKeyError:
            return False
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except CacheKeyError:
            return default

    def __getattr__(self, name: str) -> CacheView:
        if name.startswith("_"):
            raise AttributeError(name)
        if name == self._root.path:
            return CacheView(self, self._root)
        raise CacheKeyError(
            f"cache.{name}: attribute access starts at the model, e.g. "
            f"cache.{self._root.path}.<module path>.output, or use cache['<module name>']."
        )

    def _key(self, key: Any) -> str:
        if isinstance(key, str):
            if dict.__contains__(self, key):
                return key
            envoy = resolve(self._root, key)
            if envoy is not None and dict.__contains__(self, envoy._name):
                return envoy._name
        raise CacheKeyError(self._missing(key))

    def _missing(self, key: Any) -> str:
        some = ", ".join(list(self)[:3]) or "none yet"
        return (
            f"{key!r} is not in this cache: it names no cached module (cached: {some}"
            f"{', ...' if len(self) > 3 else ''}). A module appears once it has run; "
            "names may be written model.transformer.h[0] or model.transformer.h.0."
        )

    def _holds_under(self, envoy: Envoy) -> bool:
        name = envoy._name
        return any(k == name or k.startswith((name + ".", name + "[")) for k in dict.keys(self))


class CacheView:
    """``cache.model.transformer.h[0]``: a place in the module tree; ``.output`` reads its entry."""

    def __init__(self, cache: Cache, envoy: Envoy) -> None:
        self._cache = cache
        self._envoy = envoy

    @property
    def output(self) -> Any:
        return self._entry().output

    @property
    def inputs(self) -> Any:
        return self._entry().inputs

    @property
    def input(self) -> Any:
        return self._entry().input

    def _entry(self) -> Any:
        return self._cache[self._envoy._name]

    def __getattr__(self, name: str) -> CacheView:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._below(self._envoy._lookup(name), f".{name}")

    def __getitem__(self, key: int | str) -> CacheView:
        envoy = self._envoy
        if isinstance(key, int):
            if not isinstance(envoy._module, (torch.nn.ModuleList, torch.nn.Sequential)):
                raise CacheKeyError(
                    f"{envoy._name}[{key}]: {envoy._name} is not a list of modules; "
                    f"its children are {envoy._child_list()}."
                )
            try:
                child = envoy[key]
            except ModulePathError as error:
                raise CacheKeyError(str(error)) from None
            return self._below(child, f"[{key}]")
        return self._below(resolve(envoy, key, relative=True), f"[{key!r}]")

    def _below(self, child: Envoy | None, written: str) -> CacheView:
        if child is None or not self._cache._holds_under(child):
            where = child._name if child is not None else f"{self._envoy._name}{written}"
            raise CacheKeyError(
                f"{where}: nothing was cached there. Cached: "
                f"{', '.join(list(self._cache)[:3]) or 'nothing yet'}"
                f"{', ...' if len(self._cache) > 3 else ''}."
            )
        return CacheView(self._cache, child)

    def keys(self) -> list[str]:
        """The cached names at and below this place."""
        return [k for k in self._cache if _under(k, self._envoy._name)]

    def __repr__(self) -> str:
        return f"<cache of {self._envoy._name}: {len(self.keys())} cached modules>"


def _under(key: str, name: str) -> bool:
    return key == name or key.startswith((name + ".", name + "["))


def resolve(root: Envoy, path: str, *, relative: bool = False) -> Envoy | None:
    """The envoy a written path names: ``model.transformer.h[0]``, ``model.transformer.h.0``,
    a torch path (``transformer.h.0``) or one through ``rename=`` aliases; None if none."""
    parts = [p for p in path.replace("[", ".").replace("]", "").split(".") if p]
    if not relative and parts and parts[0] == root.path:
        found = _walk_parts(root, parts[1:])
        if found is not None:
            return found
    return _walk_parts(root, parts)


def _walk_parts(envoy: Envoy, parts: list[str]) -> Envoy | None:
    for part in parts:
        child = envoy._lookup(part)
        if child is None:
            return None
        envoy = child
    return envoy


def _is_fake(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "FakeTensor"


# -- tracer.cache(...) ------------------------------------------------------------------------


def open_cache(
    tracer: Any,
    modules: Iterable[Envoy | str] | Envoy | str | None,
    *,
    inputs: bool | None,
    include_inputs: bool,
    include_output: bool,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
    detach: bool,
) -> Cache:
    """Make the cache ``tracer.cache(...)`` returns and start it on the running forward, if any."""
    root = tracer.model
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise InputError(
            f"tracer.cache(dtype=...) takes a torch.dtype such as torch.float16, got {dtype!r}."
        )
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise InputError(
                f"tracer.cache(device={device!r}): not a device ({error}); use e.g. 'cpu' "
                "or 'cuda:0'."
            ) from None
    with_inputs = bool(include_inputs or inputs)
    if not include_output and not with_inputs:
        raise InputError(
            "tracer.cache(include_output=False) with no inputs caches nothing: pass "
            "include_inputs=True, or leave include_output on."
        )
    mediator = _running_mediator(root)
    cache = Cache(
        root,
        chosen_envoys(root, modules),
        outputs=include_output,
        inputs=with_inputs,
        device=device,
        dtype=dtype,
        detach=detach,
        rows=mediator.rows if mediator is not None else None,
    )
    interleaver = tracer._interleaver
    if interleaver is not None and not interleaver.finished:
        cache.attach(interleaver)  # made mid-run (in an invoke): this run only
    else:
        tracer._caches.append(cache)  # attached to the run when it starts
    return cache


def _running_mediator(root: Envoy) -> Any:
    """The body calling ``tracer.cache()`` right now (its rows), if it runs inside a forward."""
    module = root._module
    for mediator in reversed(_bodies.get(getcurrent(), [])):
        if mediator.interleaver.root is module:
            return mediator
    return None


def chosen_envoys(root: Envoy, modules: Iterable[Envoy | str] | Envoy | str | None) -> list[Envoy]:
    """Envoys for ``modules`` (envoys or names in any spelling); every module when None."""
    if modules is None:
        return root.modules()
    if isinstance(modules, str):
        modules = [modules]
    chosen = []
    for module in modules:
        if isinstance(module, str):
            found = resolve(root, module)
            if found is None:
                raise ModulePathError(
                    f"tracer.cache() got {module!r}, which names no module of this model; use "
                    "names like 'model.transformer.h[0]' or 'model.transformer.h.0', or envoys "
                    "like model.transformer.h[0]."
                )
            chosen.append(found)
        elif getattr(module, "_root", None) is root or (
            hasattr(module, "_root") and module._root._module is root._module
        ):
            chosen.append(module)
        else:
            raise ModulePathError(
                f"tracer.cache() got {module!r}, which is not a module of this model: pass its "
                "envoys (model.transformer.h[0]) or their names."
            )
    return chosen
