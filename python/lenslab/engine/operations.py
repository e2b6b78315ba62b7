"""``module.source``: every call inside a module's forward as a readable, editable point.

``model.transformer.h[0].attn.source.attention_interface_0.output`` is the value that call
returned in the running trace; ``.input`` / ``.inputs`` are its arguments. A call site is one
more point of the interleaver, keyed ``(site, "output" | "input", step)`` like a module value,
so reads in any order, edits, invokes' rows, generation steps and the out-of-order errors are
the module machinery's own (mediator.py, interleaver.py).

How a call site is reached: the module's forward is rewritten once per function (callsites.py)
so each call goes through ``scope.call(i, f)``, and that twin replaces the module instance's
forward (forwards.py; a skip still wraps it) only while some trace has a point in it: counted
per module across traces and threads, and taken off when the last such forward ends (the
interleaver drops its points when its forward ends, also after errors and Ctrl-C). While it is
on, a call from a greenlet whose trace asked for nothing there gets ``f`` back unchanged, so
another thread's trace of the same model computes exactly what the plain forward does. A trace
with no ``.source`` never runs it.

``site.source`` recurses into the function called at a site: which function that is shows only
when the forward reaches the call (``attention_interface`` is picked at run time), so the body
waits for the call to start, and this call then runs the function's rewritten twin.
"""

from __future__ import annotations

import difflib
import inspect
import threading
import weakref
from types import CodeType, FunctionType, MethodType
from typing import TYPE_CHECKING, Any

import torch
from greenlet import getcurrent
from torch import nn

from ..errors import (
    ModuleNotCalledError,
    ModulePathError,
    OutOfOrderError,
    SourceUnavailableError,
    TraceStateError,
)
from . import callsites, forwards
from .mediator import mediator_for
from .values import check_replacement, splice, view

if TYPE_CHECKING:
    from collections.abc import Callable

    from .handles import ModuleHandle
    from .interleaver import Interleaver
    from .mediator import Mediator

_lock = threading.Lock()  # attach / detach, and so the forward installs, across threads
_building = threading.Lock()  # making a scope (a module's, or a called function's)


class Scope:
    """One function body, rewritten, as run for one owner: a module instance's forward, or
    the function called at one call site (recursive ``.source``)."""

    def __init__(self, rewritten: callsites.Rewritten, original: FunctionType, owner: Any) -> None:
        self.rewritten = rewritten
        self.sites = [CallSite(self, site) for site in rewritten.sites]
        reachable = callsites.reachable(rewritten.sites)
        self.by_name = {name: self.sites[site.index] for name, site in reachable.items()}
        self.call_names = [site.name for site in rewritten.sites if not site.assignment]
        self.function = rewritten.build(self, original)
        # A module owner is held weakly (the cache below is keyed by it); a call site strongly.
        self._owner: Callable[[], Any] = (
            weakref.ref(owner) if isinstance(owner, nn.Module) else (lambda: owner)
        )
        self.attached: tuple[Interleaver, ...] = ()  # copied on change: read without the lock
        self._users: dict[Interleaver, int] = {}
        self._installed: forwards.Override | None = None

    @property
    def owner(self) -> Any:
        return self._owner()

    @staticmethod
    def bind(value: Any) -> Any:
        """What an assignment point calls with the assigned value (callsites.py)."""
        return value

    def call(self, index: int, fn: Any) -> Any:
        """What the rewritten body calls at site ``index``: ``fn``, or ``fn`` intercepted."""
        attached = self.attached
        if attached:
            here = getcurrent()
            for interleaver in attached:
                if interleaver.greenlet is here:
                    return self.sites[index].intercept(interleaver, fn)
        return fn

    # -- users, under _lock --------------------------------------------------------------------

    def add_user(self, interleaver: Interleaver) -> None:
        count = self._users.get(interleaver, 0)
        self._users[interleaver] = count + 1
        if count == 0:
            self.attached = (*self.attached, interleaver)
            if self._installed is None and isinstance(self.owner, nn.Module):
                self._install(self.owner)

    def drop_user(self, interleaver: Interleaver) -> None:
        count = self._users.get(interleaver, 0)
        if count > 1:
            self._users[interleaver] = count - 1
            return
        self._users.pop(interleaver, None)
        self.attached = tuple(il for il in self.attached if il is not interleaver)
        if not self.attached and self._installed is not None:
            self._uninstall()

    def _install(self, module: nn.Module) -> None:
        # accelerate keeps the model's forward as ``_old_forward`` behind its own wrapper.
        attr = "_old_forward" if "_old_forward" in module.__dict__ else "forward"
        twin = MethodType(self.function, module)
        self._installed = forwards.Override(module, replacement=twin, attr=attr)
        self._installed.apply()

    def _uninstall(self) -> None:
        installed, self._installed = self._installed, None
        if installed is not None:
            installed.remove()


class CallSite:
    """One call in a rewritten body: the key's first element for its values, as a module is."""

    def __init__(self, scope: Scope, site: callsites.Site) -> None:
        self.scope = scope
        self.site = site
        self.name = site.name
        self.watchers: dict[Interleaver, set[str]] = {}  # kinds each trace wants here
        self.calling: dict[Interleaver, Any] = {}  # the function being called, per trace
        self.pending: dict[Interleaver, Any] = {}  # a rewritten twin to call instead, once
        self.nested: dict[CodeType, Scope] = {}  # recursive .source, per called function
        self.skips: dict[Interleaver, list[_Skip]] = {}  # for this call only, then dropped

    def __repr__(self) -> str:
        return f"<call site {self.name} of {self.scope.rewritten.qualname}>"

    @property
    def owner(self) -> Any:
        """What encloses this call: the module, or the call site whose function it is in."""
        return self.scope.owner

    # -- the interleaver's side (watch_each / _remove_hooks) ------------------------------------

    def attach(self, interleaver: Interleaver, kind: str) -> None:
        """Make this site report ``kind`` values to ``interleaver``'s forward."""
        with _lock:
            kinds = self.watchers.get(interleaver)
            if kinds is None:
                self.watchers[interleaver] = {kind}
                self.scope.add_user(interleaver)
            else:
                kinds.add(kind)

    def detach(self, interleaver: Interleaver, kind: str) -> None:
        """Undo ``attach``; safe to repeat (an interrupt may cut the caller short)."""
        with _lock:
            kinds = self.watchers.get(interleaver)
            if kinds is None:
                return
            kinds.discard(kind)
            if not kinds:
                del self.watchers[interleaver]
                self.pending.pop(interleaver, None)
                self.calling.pop(interleaver, None)
                self.skips.pop(interleaver, None)
                self.scope.drop_user(interleaver)

    def intercept(self, interleaver: Interleaver, fn: Any) -> Any:
        """``fn`` wrapped to hand its arguments and result to ``interleaver``'s bodies."""
        if interleaver not in self.watchers:
            return fn

        def run(*args: Any, **kwargs: Any) -> Any:
            self.calling[interleaver] = fn
            try:
                if "input" in self.watchers.get(interleaver, ()):
                    new = interleaver.point_input(self, args, kwargs)
                    if new is not None:
                        args, kwargs = new
                actual = self.pending.pop(interleaver, None) or fn
                skipped = self.skips.pop(interleaver, None)
            finally:
                self.calling.pop(interleaver, None)
            if skipped:
                value = _skipped(skipped, interleaver.batch, actual, args, kwargs)
            else:
                value = actual(*args, **kwargs)
            if "output" in self.watchers.get(interleaver, ()):
                new = interleaver.point_output(self, value)
                if new is not None:
                    value = new
            return value

        return run

    def nested_scope(self, fn: Any) -> Scope:
        """The rewritten twin of ``fn``, the function called here (cached per function)."""
        raw = callsites.raw_function(fn)
        scope = self.nested.get(raw.__code__)
        if scope is None:
            with _building:
                scope = self.nested.get(raw.__code__)
                if scope is None:
                    scope = Scope(callsites.rewrite(raw), raw, self)
                    self.nested[raw.__code__] = scope
        return scope


_Skip = tuple[slice | None, Any, str]  # (an invoke's rows, its value, the user's label)


def _skipped(entries: list[_Skip], batch: int, fn: Any, args: Any, kwargs: Any) -> Any:
    """The call's result with the skipping invokes' values; the call runs only if some rows
    are not skipped (or the values cannot be joined into one batch)."""
    for rows, value, _ in reversed(entries):
        if rows is None:
            return value
    ordered = sorted(entries, key=lambda entry: entry[0].start)  # type: ignore[union-attr]
    covered = [range(batch)[rows] for rows, _, _ in ordered]  # type: ignore[index]
    joined = [i for part in covered for i in part] == list(range(batch))
    values = [value for _, value, _ in ordered]
    if joined and all(isinstance(v, torch.Tensor) for v in values):
        return values[0] if len(values) == 1 else torch.cat(values)
    result = fn(*args, **kwargs)
    for rows, value, label in entries:
        check_replacement(view(result, rows, batch), value, label)
        result = splice(result, rows, batch, value)
    return result


_module_scopes: weakref.WeakKeyDictionary[nn.Module, Scope] = weakref.WeakKeyDictionary()


def module_scope(module: nn.Module) -> Scope:
    """The rewritten forward of ``module`` (built on first use; raises short errors)."""
    scope = _module_scopes.get(module)
    if scope is None:
        with _building:  # one scope per module: two would each install their own forward
            scope = _module_scopes.get(module)
            if scope is None:
                raw = callsites.raw_function(_true_forward(module))
                scope = _module_scopes[module] = Scope(callsites.rewrite(raw), raw, module)
    return scope


def _true_forward(module: nn.Module) -> Any:
    old = module.__dict__.get("_old_forward")  # accelerate's hooks wrap the real one
    if old is not None:
        return old
    # Static: a TorchScript module's ``forward`` is a descriptor that raises when read unbound.
    return inspect.getattr_static(type(module), "forward")


def call_site_names(module: nn.Module | ModuleHandle) -> list[str]:
    """The names of the call sites in ``module``'s forward, in nnsight's order.

    For tools (the lab sidebar) that list what ``module.source`` offers; works outside traces.

    Raises:
        SourceUnavailableError: the forward is not Python code with readable source.
    """
    return list(call_site_lines(module))


def call_site_lines(module: nn.Module | ModuleHandle) -> dict[str, str]:
    """Each call site's name with the line of code it is on (stripped), in nnsight's order.

    Raises:
        SourceUnavailableError: the forward is not Python code with readable source.
    """
    target = getattr(module, "_module", module)
    rewritten = _scope_of(target, type(target).__name__).rewritten
    return {
        site.name: rewritten.lines[site.line - rewritten.first_line].strip()
        for site in rewritten.sites
        if not site.assignment
    }


def _scope_of(module: nn.Module, label: str) -> Scope:
    try:
        return module_scope(module)
    except callsites.NoSourceError as error:
        raise SourceUnavailableError(
            f"{label}.source needs the Python source of {type(module).__name__}.forward, but "
            f"{error}. .source works on modules whose forward is plain Python (compiled or C "
            "extension forwards have no call sites to show); read this module's .output / "
            ".input, or .source on a module inside it."
        ) from None


# -- what the user touches ---------------------------------------------------------------------


class SourceView:
    """``module.source``: the call sites of a forward, as attributes; printing shows the code."""

    def __init__(self, scope: Scope, label: str, root: ModuleHandle) -> None:
        self._scope = scope
        self._label = label
        self._root = root
        self._operations: dict[str, Operation] = {}

    def __getattr__(self, name: str) -> Operation:
        if name.startswith("__") or "_scope" not in self.__dict__:
            raise AttributeError(name)
        found = self._operations.get(name)
        if found is not None:
            return found
        site = self._scope.by_name.get(name)
        if site is None:
            if name.startswith("_"):  # a probe (IPython's _repr_html_...), not a call site
                raise AttributeError(name)
            raise ModulePathError(self._missing(name))
        found = self._operations[name] = Operation(site, f"{self._label}.{name}", self._root)
        return found

    def __getitem__(self, name: str) -> Operation:
        """``source["self_c_proj_0"]``: the same as the attribute, for names held in a variable."""
        return self.__getattr__(name)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._scope.by_name]

    def __iter__(self) -> Any:
        return iter(self._scope.call_names)

    def __len__(self) -> int:
        return len(self._scope.call_names)

    def __contains__(self, name: object) -> bool:
        return name in self._scope.by_name

    def __repr__(self) -> str:
        return callsites.render(self._scope.rewritten, self._label)

    def _missing(self, name: str) -> str:
        names = self._scope.call_names
        message = f"{self._label} has no call site {name!r}."
        close = difflib.get_close_matches(name, list(self._scope.by_name), n=3, cutoff=0.5)
        if close:
            message += f" Did you mean {', '.join(close)}?"
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        return f"{message} Its call sites are: {shown}. print({self._label}) shows the code."


class Operation:
    """One call site as seen from a trace: ``.output``, ``.input``, ``.inputs``, ``.source``.

    It stands where an envoy stands for the mediator: ``_module`` is the site (the key of its
    values), ``_name`` the user's path, ``_root`` the model.
    """

    def __init__(self, site: CallSite, label: str, root: ModuleHandle) -> None:
        self._module = site
        self._name = label
        self._root = root
        self._source: SourceView | None = None

    @property
    def output(self) -> Any:
        """What this call returned (assign to replace it for the rest of the forward)."""
        return self._mediator("output").read(self, "output")  # type: ignore[arg-type]

    @output.setter
    def output(self, value: Any) -> None:
        self._mediator("output").write(self, "output", value)  # type: ignore[arg-type]

    @property
    def input(self) -> Any:
        """The call's first argument (the first keyword argument if it had no positional one)."""
        return self._mediator("input").read(self, "input")  # type: ignore[arg-type]

    @input.setter
    def input(self, value: Any) -> None:
        self._mediator("input").write(self, "input", value)  # type: ignore[arg-type]

    @property
    def inputs(self) -> Any:
        """``(args, kwargs)`` of the call."""
        return self._mediator("inputs").read(self, "inputs")  # type: ignore[arg-type]

    @inputs.setter
    def inputs(self, value: Any) -> None:
        self._mediator("inputs").write(self, "inputs", value)  # type: ignore[arg-type]

    def _mediator(self, kind: str) -> Mediator:
        """The reading body's mediator, once it is sure the forward can still make this call.

        The rewritten forward goes on before the module runs, for each source path the body's
        code shows (site_targets). A body with no code to read ahead (run by ``exec``) asks as
        it goes; once the module's plain forward is running, its calls cannot be seen this
        time, and waiting for one would only fail at the end with a vaguer error.
        """
        mediator = mediator_for(self, kind)  # type: ignore[arg-type]
        site, interleaver = self._module, mediator.interleaver
        if interleaver in site.watchers or site.scope._installed is not None:
            return mediator
        owner = site.scope.owner
        if isinstance(owner, nn.Module) and interleaver.inside(owner):
            module = self._name.rsplit(".source.", 1)[0]
            raise OutOfOrderError(
                f"{self._name}.{kind}: the forward pass was already inside {module} (at "
                f"{mediator._last_label}) when this body first asked for {module}.source, so "
                "that forward runs without its call sites this time. lenslab sets .source up "
                "before the run for the paths it can read in the body's code; this one it could "
                "not (code run by exec, or a name built at run time). Ask for "
                f"{self._name} before anything inside {module}."
            )
        return mediator

    @property
    def source(self) -> SourceView:
        """The call sites of the function this call runs (inside a trace: it is known only once
        the forward reaches the call, which then runs that function's rewritten twin)."""
        site = self._module
        label = f"{self._name}.source"
        if site.site.assignment:
            raise SourceUnavailableError(
                f"{label}: {self._name} is an assignment (a point nnsight 0.8 numbers), not a "
                "call, so there is no function to open; read its .output, or .source on the call "
                "whose result it binds."
            )
        mediator = mediator_for(self, "source")  # type: ignore[arg-type]
        self._reach_call(mediator, f"cannot open {label}", "A recursive .source")
        interleaver = mediator.interleaver
        fn = site.calling.get(interleaver)
        if isinstance(fn, nn.Module):
            raise TraceStateError(
                f"{label}: {self._name} calls a module ({type(fn).__name__}); use that "
                "module's own .source (e.g. model.<path to it>.source) instead of a recursive "
                ".source."
            )
        try:
            scope = site.nested_scope(fn)
        except callsites.NoSourceError as error:
            shown = getattr(fn, "__qualname__", None) or type(fn).__name__
            raise SourceUnavailableError(
                f"{label}: the function called there ({shown}) has no Python source to show "
                f"({error}); read {self._name}.output or .inputs instead."
            ) from None
        twin: Any = scope.function
        if inspect.ismethod(fn):
            twin = MethodType(twin, fn.__self__)
        site.pending[interleaver] = twin
        view = self._source
        if view is None or view._scope is not scope:
            view = self._source = SourceView(scope, label, self._root)
        return view

    def skip(self, value: Any) -> None:
        """Do not make this call: ``value`` is its result, for this invoke's rows.

        When other invokes' rows still need the call, it runs and these rows of its result are
        replaced (what each invoke would have seen alone). Must come before the call runs.
        """
        mediator = mediator_for(self, "skip")  # type: ignore[arg-type]
        self._reach_call(mediator, f"cannot skip {self._name}", "A .skip")
        site, rows = self._module, mediator.rows
        label = f"{self._name}.skip(...)"
        site.skips.setdefault(mediator.interleaver, []).append((rows, value, label))

    def _reach_call(self, mediator: Mediator, what: str, kind: str) -> None:
        """Wait until the forward is about to make this call (its arguments are known)."""
        late = (
            f"{kind} must be reached before the call runs: move this line above the reads of "
            f"anything after {self._name}."
        )
        interleaver = mediator.interleaver
        done = mediator._key(self, "output")  # type: ignore[arg-type]
        slot = mediator.slot
        if done in interleaver.values or (slot is not None and slot.key == done):
            raise OutOfOrderError(
                f"{what}: the forward pass already ran past {self._name} (it is at "
                f"{mediator._last_label}). {late}"
            )
        try:
            mediator._value(self, "inputs")  # type: ignore[arg-type]
        except ModuleNotCalledError as error:
            raise ModuleNotCalledError(
                f"{what}: the forward pass did not call {self._name} after "
                f"{mediator._last_label}. {late}"
                if mediator._last_label is not None
                else f"{what}: {error}"
            ) from None
        slot = mediator.slot
        if slot is None or slot.key[0] is not self._module or slot.key[1] != "input":
            raise OutOfOrderError(
                f"{what}: the forward pass already ran past {self._name} (it is at "
                f"{mediator._last_label}). {late}"
            )

    def __repr__(self) -> str:
        scope = self._module.scope
        return callsites.render_site(scope.rewritten, self._module.site, self._name)


def source_of(envoy: ModuleHandle) -> SourceView:
    """``envoy.source``: the view of its module's forward (cached on the envoy)."""
    module = envoy._module
    cached = envoy.__dict__.get("_source_view")
    if cached is not None and cached[0] is module:
        return cached[1]  # type: ignore[no-any-return]
    view = SourceView(_scope_of(module, envoy._name), f"{envoy._name}.source", envoy._root)
    envoy.__dict__["_source_view"] = (module, view)
    return view


def rebind_source(envoy: ModuleHandle) -> None:
    """The envoy now stands for another module (a lazy model loaded its weights): point its
    ``.source`` view, and the operations taken from it, at the same calls of the new module."""
    cached = envoy.__dict__.get("_source_view")
    if cached is None or cached[0] is envoy._module:
        return
    view = cached[1]
    view._scope = _scope_of(envoy._module, envoy._name)
    for name, operation in view._operations.items():
        site = view._scope.by_name.get(name)
        if site is not None:
            operation._module = site
            operation._source = None
    envoy.__dict__["_source_view"] = (envoy._module, view)


def site_targets(
    modules: list[nn.Module], rest: tuple[tuple[str, Any], ...], kind: str
) -> list[tuple[Any, str]]:
    """The points a source path ``<modules>.source.<rest>.<kind>`` reads, for the tracer to
    watch before the forward starts (so any read order works, and the forwards are installed
    before their modules run). A recursive ``.source`` resolves only at run time: its outer
    call's input is watched, where the body will wait."""
    if not rest or rest[0][0] != "attr":
        return []
    name = rest[0][1]
    nested = any(step == ("attr", "source") for step in rest[1:])
    found: list[tuple[Any, str]] = []
    for module in modules:
        try:
            scope = module_scope(module)
        except callsites.NoSourceError:
            continue  # the read itself raises the error, with the user's names
        site = scope.by_name.get(name)
        if site is not None:
            found.append((site, "input" if nested or kind != "output" else "output"))
    return found
