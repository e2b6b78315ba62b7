"""Runs one forward on a greenlet and pauses it wherever a trace body asks for a value.

Why greenlets: a trace body runs as ordinary Python on the caller's thread (so pdb, magics,
``exec`` and tracebacks behave as usual), while the forward waits inside a module hook. A
greenlet switch costs about half a microsecond, against ~75 us for a thread hand-off, and
needs no interpreter tricks. Greenlets share the thread's C stack, which native stack walks
(torch's error path) must not wander past: stacks.py says how every greenlet here starts.

Hooks exist only on the modules some body reads (and the blocks enclosing them), only while
the forward runs, and act only on this forward's greenlet: a direct call like
``model.lm_head(h)`` from a body, or another thread using the same model, passes straight
through them.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet
from torch import nn

from .handles import Body, Key, SkipTable
from .stacks import spawn

KINDS = ("input", "output")


@dataclass
class Run:
    """What a model wrapper hands the engine: how to run it, and who owns which batch rows."""

    call: Callable[[], Any]  # runs the model (a forward, or a whole generation)
    rows: list[slice | None]  # batch rows of each invoke (None: all of them)
    size: int  # batch size
    steps: int = 1  # forward calls the run makes at most (generation: max_new_tokens)
    unstepped: frozenset[nn.Module] = field(default_factory=frozenset)  # called once, at the end


class StopTrace(BaseException):
    """Raised by ``tracer.stop()``: ends the body and the forward, quietly."""


class _Abort(BaseException):
    """Unwinds the forward when a body fails or the trace is left early."""


class Interleaver:
    """One forward pass (or one generation) shared by the bodies of a trace's invokes."""

    def __init__(self, root: nn.Module, run: Run) -> None:
        self.root = root
        self.batch = run.size
        self.steps = run.steps
        self.unstepped = run.unstepped
        self.mediators: list[Body] = []
        self.values: dict[Key, Any] = {}  # what watched modules produced, full batch
        # Calls of the root module so far (generation steps). A single forward needs no count:
        # it is step 0 throughout, and the root keeps torch's fast path (no pre-hook of ours).
        self._counts_steps = run.steps > 1 or bool(run.unstepped)
        self.step = -1 if self._counts_steps else 0
        # In a single forward, a module's (or call site's) later calls take "steps" 1, 2, ...:
        # nnsight's per-call iteration, reached with tracer.iter[i] or .next(). A generation
        # keeps steps for its forwards and traces the first call in each.
        self.calls: dict[tuple[Any, str], int] = {}  # (module, kind) -> calls after the first
        self.finished = False
        self.result: Any = None
        self.failure: BaseException | None = None
        self.current: Key | None = None  # the value being handed to bodies right now
        self.unattended = False  # no body pauses in this run (passive.py): values are only kept
        self.skips: SkipTable | None = None  # set by the first .skip (skipping.py)
        self.wakeups: list[Callable[[], None]] = []  # run on the forward's side (barrier.py)
        self._run = run.call
        self._hooks: dict[tuple[nn.Module, str], int] = {}
        self._parents: dict[nn.Module, nn.Module | None] | None = None
        self._recorded: set[tuple[nn.Module, str]] = set()
        self._seen: set[Key] = set()
        self._observers: dict[tuple[nn.Module, str], list[Callable[[int, Any], None]]] = {}
        self.greenlet = _take_worker()
        self._started = self._ended = False
        self._escaped: BaseException | None = None  # raised by the forward, for resume()
        self._step_hook: int | None = None  # the root's pre-hook that counts generation steps

    # -- set-up ----------------------------------------------------------------------------

    def watch(self, module: nn.Module, kind: str) -> None:
        """Keep (and offer to bodies) the values ``module`` produces of this kind."""
        self.watch_each(((module, kind),))

    def watch_all(self) -> None:
        """Keep every module's input and output: for bodies whose reads cannot be foreseen."""
        self.watch_each((module, kind) for module in self.root.modules() for kind in KINDS)

    def watch_each(
        self, targets: Iterable[tuple[nn.Module, str]], *, enclosing: bool = True
    ) -> None:
        """``watch`` for each (module, kind) pair (one call: this runs on every trace).

        A body paused at a module may next ask for an enclosing block's output (through a path
        the source did not show). torch takes a module call's hooks when the call starts, so the
        blocks around every place a body can pause get their output hook now, before they run
        (``enclosing=False``: for a body that never pauses mid-forward, see passive.py).
        """
        root, hooks, recorded = self.root, self._hooks, self._recorded
        for target in targets:
            recorded.add(target)
            module, kind = target
            while (module, kind) not in hooks:  # climb until a block that has its hook
                # What register_forward_(pre_)hook does, minus its RemovableHandle (weakrefs,
                # ~2 us a module); ids come from a range torch's own counter never reaches.
                hook_id = next(_hook_ids)
                hooks[(module, kind)] = hook_id  # first: an interrupt then leaves none unknown
                if not isinstance(module, nn.Module):  # a call site in a forward (operations.py)
                    module.attach(self, kind)
                    if not enclosing:
                        break
                    module, kind = module.owner, "output"  # its module, or its outer call
                    continue
                if kind == "output":
                    module._forward_hooks[hook_id] = self._on_output
                else:
                    module._forward_pre_hooks[hook_id] = self._on_input
                    module._forward_pre_hooks_with_kwargs[hook_id] = True
                if module is root or not enclosing:
                    break
                if self._parents is None:
                    self._parents = _parents(root)
                module, kind = self._parents.get(module) or root, "output"

    def inside(self, module: nn.Module) -> bool:
        """Whether the value handed out right now comes from inside ``module``'s forward (its
        input included: torch looks the forward up before the pre-hooks run)."""
        current = self.current
        if current is None:
            return False
        at = current[0]
        while not isinstance(at, nn.Module):  # a call site: its module, or its outer call
            at = at.owner
        if at is module:
            return current[1] == "input" or at is not current[0]
        if self._parents is None:
            self._parents = _parents(self.root)
        parent = self._parents.get(at)
        while parent is not None:
            if parent is module:
                return True
            parent = self._parents.get(parent)
        return False

    def observe(self, module: nn.Module, kind: str, record: Callable[[int, Any], None]) -> None:
        """Call ``record(step, value)`` with each final value of ``module`` (after edits)."""
        self.watch(module, kind)
        self._observers.setdefault((module, kind), []).append(record)

    # -- driving, from the caller's greenlet ----------------------------------------------------

    def resume(self) -> None:
        """Let the forward run until it next needs a body (or ends); raise what it raised."""
        if self._started:
            self.greenlet.switch()
        else:
            self._started = True
            self.greenlet.switch(self._main)
        error, self._escaped = self._escaped, None
        if error is not None:
            raise error

    def run_here(self) -> None:
        """Run the whole forward on the calling greenlet, as a plain call; raise what it raised.

        For a run no body pauses (see passive.py): no greenlet switch, which on a real model
        costs far more than its ~1 us here, since the forward has flushed the CPU caches.
        """
        assert not self._started and all(not m.deferred for m in self.mediators)
        worker = self.greenlet
        self._started = True  # first: abort() then never hands the worker back a second time
        self.greenlet = getcurrent()  # the hooks act on the greenlet the forward runs on
        _idle_workers().append(worker)
        self._main()
        error, self._escaped = self._escaped, None
        if error is not None:
            raise error

    def abort(self) -> None:
        """Unwind a paused forward (removing its hooks) and end every body still waiting.

        Then let go of the run's values at once: bodies and this object point at each other, so
        waiting for the garbage collector would keep the output (SmolLM2's logits are megabytes)
        alive into the next trace, and the allocator would fetch fresh pages for each one.

        Safe to call again after an interrupt cut it short (the tracer's ``_close`` does). A
        KeyboardInterrupt that reached the forward while it unwound is raised here, at the end:
        the user pressed Ctrl-C, so the user sees it.
        """
        if not self._started:
            self._started = self._ended = True  # one statement: the worker is handed back once
            _idle_workers().append(self.greenlet)
        elif not self._ended and not self.greenlet.dead:  # _main's finally sets _ended
            # A forward cut before it began (an interrupt between resume()'s two lines) leaves
            # the worker parked: the _Abort then ends it and comes back here.
            with contextlib.suppress(_Abort):
                self.greenlet.throw(_Abort())
        if self.skips is not None:  # in any order with the call sites (forwards.py)
            self.skips.unwrap()
        self._remove_hooks()  # also when the forward never started, or was cut unwinding
        for mediator in self.mediators:
            mediator.close()
        self.mediators.clear()
        self.values.clear()
        self._observers.clear()
        self.result = None
        escaped, self._escaped = self._escaped, None
        if isinstance(escaped, KeyboardInterrupt):
            raise escaped

    def _remove_hooks(self) -> None:
        if self._step_hook is not None:
            self.root._forward_pre_hooks.pop(self._step_hook, None)
            self._step_hook = None
        for (module, kind), hook_id in self._hooks.items():
            if not isinstance(module, nn.Module):  # a call site: puts the forward back when last
                module.detach(self, kind)
            elif kind == "output":
                module._forward_hooks.pop(hook_id, None)
            else:
                module._forward_pre_hooks.pop(hook_id, None)
                module._forward_pre_hooks_with_kwargs.pop(hook_id, None)
        self._hooks.clear()

    # -- the forward's greenlet -----------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._forward()
        except BaseException as error:  # the greenlet waiting in resume() raises it
            self._escaped = error
        finally:
            self._ended = True

    def _forward(self) -> None:
        if self._counts_steps:  # by hand, as in watch_each, so that _remove_hooks finds it
            self._step_hook = hook_id = next(_hook_ids)
            pre_hooks = self.root._forward_pre_hooks
            pre_hooks[hook_id] = self._on_step
            pre_hooks.move_to_end(hook_id, last=False)
        try:
            for mediator in self.mediators:
                if not mediator.started and mediator.start_on is None:
                    mediator.start()
                    self._raise_if_failed()
            self.result = self._run()
        except _Abort:
            return
        finally:
            self.finished = True
            if self.skips is not None:
                self.skips.unwrap()
            self._remove_hooks()
        for mediator in self.mediators:
            if mediator.deferred:  # an inline body waits on no one
                mediator.forward_finished()
                if self.failure is not None:
                    break

    def _raise_if_failed(self) -> None:
        if self.failure is not None:
            raise _Abort

    def _on_step(self, module: nn.Module, args: Any) -> None:
        if getcurrent() is self.greenlet:
            self.step += 1

    def _on_output(self, module: nn.Module, args: Any, output: Any) -> Any:
        if getcurrent() is not self.greenlet:
            return None
        key = (module, "output", -1 if module in self.unstepped else self.step)
        if key in self._seen:  # called again in this step
            if self._counts_steps:  # a generation: only a step's first call is traced
                return None
            key = self._again(module, "output")
        self._seen.add(key)
        produced = output
        if self.skips is not None:  # some invoke skips this module (skipping.py)
            replaced = self.skips.replace(module, key[2], output)
            if replaced is not None:
                output = replaced
        if self.unattended:
            if (module, "output") in self._recorded:
                self.values[key] = output
            new = output
        else:
            new = self._deliver(key, output, (module, "output") in self._recorded)
        if self._observers:
            for record in self._observers.get((module, "output"), ()):
                record(key[2], new)
        return None if new is produced else new

    def _on_input(self, module: nn.Module, args: Any, kwargs: Any) -> Any:
        if getcurrent() is not self.greenlet:
            return None
        key = (module, "input", -1 if module in self.unstepped else self.step)
        if key in self._seen:
            if self._counts_steps:
                return None
            key = self._again(module, "input")
        self._seen.add(key)
        value = (args, kwargs)
        new = self._deliver(key, value, (module, "input") in self._recorded)
        if self._observers:
            for record in self._observers.get((module, "input"), ()):
                record(key[2], new)
        return None if new is value else new

    def _again(self, module: Any, kind: str) -> Key:
        """The key of a later call of ``module`` in a single forward: its call number."""
        count = self.calls.get((module, kind), 0) + 1
        self.calls[(module, kind)] = count
        return (module, kind, count)

    def calls_made(self, module: Any, kind: str) -> int:
        """How many times ``module`` (watched) has been called so far in this run's step."""
        if (module, kind, -1 if module in self.unstepped else self.step) not in self._seen:
            return 0
        return 1 + self.calls.get((module, kind), 0)

    @property
    def counts_steps(self) -> bool:
        """Whether step numbers count the root's forwards (a generation), not a module's calls."""
        return self._counts_steps

    def point_input(self, point: Any, args: Any, kwargs: Any) -> Any:
        """A call site's arguments, as a module's input hook gets them (operations.py)."""
        return self._on_input(point, args, kwargs)

    def point_output(self, point: Any, value: Any) -> Any:
        """A call site's result, as a module's output hook gets it; None if unchanged."""
        return self._on_output(point, None, value)

    def _deliver(
        self, key: Key, value: Any, record: bool, bodies: list[Body] | None = None
    ) -> Any:
        """Hand ``value`` to the bodies (all, or ``bodies``) waiting for ``key``."""
        if record:
            self.values[key] = value
        self.current = key
        module = key[0]
        for mediator in self.mediators if bodies is None else bodies:
            if not mediator.started and module in mediator.start_on:  # type: ignore[operator]
                mediator.start()
                self._raise_if_failed()
            if mediator.waiting == key:
                value = mediator.deliver(key, value)
                if self.failure is not None:
                    raise _Abort
        self.current = None
        if record:
            self.values[key] = value
        return value

    def wake(self) -> None:
        """Run what bodies queued for the forward's side (a barrier's release)."""
        while self.wakeups:
            self.wakeups.pop(0)()

    def fail(self, error: BaseException) -> None:
        """A body raised: remember it; the forward unwinds at its next step."""
        if self.failure is None:
            self.failure = error


# -- the greenlets forwards run on ---------------------------------------------------------------
# Making and finishing a greenlet costs ~15 us, ten times a switch, on every trace; so each
# thread keeps the greenlets whose forwards ended, parked in a loop that runs the next one.

_workers = threading.local()


def _idle_workers() -> list[greenlet]:
    idle = getattr(_workers, "idle", None)
    if idle is None:
        idle = _workers.idle = []
    return idle


def _take_worker() -> greenlet:
    """A greenlet for one forward; when the forward ends it goes back to the greenlet asking now."""
    idle = _idle_workers()
    while idle:
        worker = idle.pop()
        if not worker.dead:  # one is dead if an interrupt hit it on its way to park
            worker.parent = getcurrent()
            return worker
    worker = spawn(_serve)
    worker.parent = getcurrent()
    return worker


def _serve(job: Callable[[], None]) -> None:
    me = getcurrent()
    while True:
        job()
        del job  # a parked worker holds nothing of the forward it ran
        _idle_workers().append(me)
        job = _park(me)


def _park(me: greenlet) -> Callable[[], None]:
    """Wait for the next forward (a stray child greenlet ending here does not count)."""
    while True:
        job = me.parent.switch()
        if callable(job):
            return job


def end_greenlet(g: greenlet) -> None:
    """Finish a suspended body greenlet, running its ``finally`` blocks.

    It ends back here, not in its parent: that may be a worker parked for the next forward.
    """
    if g and not g.dead:
        g.parent = getcurrent()
        with contextlib.suppress(GreenletExit):
            g.throw(GreenletExit)


_hook_ids = itertools.count(1 << 48)

_parent_cache: dict[int, tuple[weakref.ref[nn.Module], dict[nn.Module, nn.Module | None]]] = {}


def _parents(root: nn.Module) -> dict[nn.Module, nn.Module | None]:
    """Each module under ``root`` -> its closest enclosing module that is itself called.

    Built once per model: module trees rarely change, and a module added later falls back to
    the root. Containers never called (ModuleList, ModuleDict) are passed over. The root itself
    shows as None, so the cache holds no reference to its own key.
    """
    hit = _parent_cache.get(id(root))  # by id: a WeakKeyDictionary lookup runs Python code
    if hit is not None and hit[0]() is root:
        return hit[1]
    found: dict[nn.Module, nn.Module | None] = {}
    stack: list[tuple[nn.Module, nn.Module | None]] = [(root, None)]
    while stack:
        module, called = stack.pop()
        for child in module._modules.values():
            if child is not None:
                found[child] = called
                stack.append((child, called if isinstance(child, _UNCALLED) else child))
    key = id(root)
    _parent_cache[key] = (weakref.ref(root, lambda _: _parent_cache.pop(key, None)), found)
    return found


_UNCALLED = (nn.ModuleList, nn.ModuleDict)
