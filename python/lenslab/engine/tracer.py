"""The with-blocks: ``model.trace(...)`` and ``tracer.invoke(...)``.

``with model.trace(inputs):`` runs its body inline, as plain Python on the caller's thread; the
forward advances to each module the body reads and waits there.

``tracer.invoke(...)`` blocks are different: their bodies must all share one batched forward,
which cannot start before the last invoke is known. So each invoke body is read from source and
skipped where it stands; when the trace ends, the bodies run (each in the namespace it was
written in, seeing names bound by earlier invokes) inside one forward over the batch of all
their inputs, and the names they bound are written back into the caller's scope. Without
source (a string run with ``exec``), an invoke runs inline with its own forward: same values,
one warning. ``validate=True`` defers a trace's own body the same way, to run it first on fake
tensors (shapes only) and then for real.
"""

from __future__ import annotations

import functools
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import torch
from greenlet import getcurrent, greenlet
from torch import nn

from ..errors import EditError, InputError, InvokeError, LensError, LensWarning, TraceStateError
from . import frames, observers, rerun, source

try:
    from ._guard import Guarded
except ImportError as error:  # a checkout built before _guard.c existed, or never built
    raise ImportError(
        "lenslab's compiled helper lenslab/engine/_guard is missing: this copy of lenslab was "
        "not built (or was built before it existed). Rebuild it with `pip install -e .` (or "
        "scripts/install) from the repository; a C compiler and Python's headers are needed."
    ) from error
from .barrier import Barrier
from .cache import Cache, open_cache
from .envoy import Envoy
from .gradients import close_trace, open_trace
from .interleaver import Interleaver, Run, StopTrace
from .mediator import Mediator
from .registry import _open
from .scan import ending_at_user_code, needs_values, shapes_only
from .source import Index
from .steps import StepLoop, Steps, advance

if TYPE_CHECKING:
    from .source import Block


class Traceable(Protocol):
    """What a model wrapper gives the tracer (see models/module.py)."""

    _module: nn.Module

    def _ready(self) -> None: ...

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    def _batch(self, prepared: list[Any], method: str, options: dict[str, Any]) -> Run: ...

    def _call_inputs(self, prepared: Any) -> tuple[tuple[Any, ...], dict[str, Any]]: ...


@dataclass
class Deferred:
    """A body to run later inside the batched forward: its inputs, code and namespace."""

    prepared: Any  # None: a promptless invoke, over the rows of all the others
    block: Block
    namespace: dict[str, Any]


class Tracer(Guarded):
    """``with model.trace(...) as tracer:``; after the block, ``tracer.result`` is the output.

    ``__enter__`` / ``__exit__`` come from ``Guarded`` (engine/_guard.c): they call ``_enter``
    / ``_exit`` and then, whatever those raised, ``_close``, again if an interrupt cut it
    short. So ``_close`` undoes one thing per step, each step safe to repeat, and every piece
    of state is recorded *before* it takes effect (a hook id before the hook, ``_is_open``
    before the saved-values list is pushed), so that a step cut anywhere leaves nothing that a
    repeated ``_close`` cannot find.

    Args:
        method: ``"forward"``, or ``"generate"`` for language models.
        scan: run on fake tensors only (shapes and dtypes, no compute): ``model.scan(...)``.
        validate: run the block on fake tensors first, so a shape mistake in an edit is
            reported before the real run (the block's code then runs twice).
    """

    def __init__(
        self,
        model: Traceable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        method: str = "forward",
        options: dict[str, Any] | None = None,
        *,
        scan: bool = False,
        validate: bool = False,
    ) -> None:
        self.model = model
        self.method = method
        self.options = options or {}
        self._result: Any = None
        self.saved: list[Any] = []  # pushed by open_trace while the block is open
        self._inputs = (args, kwargs) if args or kwargs else None
        self._scan = scan
        self._validate = validate
        self._pending: list[Deferred] = []
        self._interleaver: Interleaver | None = None
        self._inline: Mediator | None = None
        self._frame: FrameType | None = None
        self._is_open = False  # between __enter__ and the end of __exit__
        self._caches: list[Cache] = []
        self._block: Block | None = None
        self._unskip: Callable[[], None] | None = None  # undoes the skip of a deferred body
        self._opened_on: greenlet | None = None  # where __enter__ ran (see _open)
        self._invoking = False  # an invoke's body is running: no invoke may open inside it
        self._rerun: rerun.Rerun | None = None  # runs a body with .save() on anything (rerun.py)
        self._notified = False  # observers heard that this trace closed

    # -- inside the block ------------------------------------------------------------------

    def invoke(self, *args: Any, **kwargs: Any) -> Invoker:
        """One more input for this trace; its block's code sees only its own batch rows.

        Without inputs (``tracer.invoke()``), the block sees every row of the invokes that
        have inputs, in their order, wherever it stands among them.
        """
        if self._invoking:
            raise InvokeError(
                "tracer.invoke(...) inside another invoke's body: invokes are siblings, each "
                "written directly in the trace's body. Move this `with tracer.invoke(...):` "
                "out, next to the other invokes."
            )
        if self._inputs is not None:
            if not args and not kwargs:
                raise InputError(
                    "tracer.invoke() without inputs runs over the rows of the trace's "
                    "tracer.invoke('prompt') blocks, but this trace got its inputs from "
                    "model.trace(...), so its own body already sees every row: write the code "
                    "directly in the trace's body."
                )
            raise InputError(
                "this trace already has inputs from model.trace(...); give inputs either to "
                "model.trace(...) or to each tracer.invoke(...), not both."
            )
        return Invoker(self, args, kwargs)

    def run_pending(self, method: str, options: dict[str, Any]) -> Any:
        """Run the invokes declared so far now, as ``method`` (nnsight's in-trace generate)."""
        if not self._pending:
            raise InputError(
                f"model.{method}() inside a trace needs inputs, from tracer.invoke(...) blocks "
                f"above it or as arguments: model.{method}('prompt', ...)."
            )
        self.method, self.options = method, options
        self._flush()
        return self._result

    @property
    def result(self) -> Any:
        """What the model returned (generation: the token ids); inside the block, waits for it."""
        running = self._inline is not None or self._invoking
        if running and self._interleaver is not None and not self._interleaver.finished:
            root = (
                getattr(self.model, "generator", self.model)
                if self.method == "generate"
                else self.model
            )
            return root.output
        return self._result

    @property
    def iter(self) -> Steps:
        """Generation steps to run a loop over: ``for step in tracer.iter[1:3]:``."""
        return Steps(self)

    def all(self) -> StepLoop:
        """Every generation step: ``for step in tracer.all():``."""
        return Steps(self)[:]

    def next(self, steps: int = 1) -> None:
        """Move the running body ``steps`` steps on (in one forward: calls), for every module
        it reads next: nnsight's ``tracer.next()``; ``module.next()`` does the same."""
        advance(self, steps)

    def cache(
        self,
        modules: Iterable[Envoy | str] | Envoy | str | None = None,
        *,
        inputs: bool | None = None,
        include_inputs: bool = False,
        include_output: bool = True,
        device: torch.device | str | None = "cpu",
        dtype: torch.dtype | None = None,
        detach: bool = True,
    ) -> Cache:
        """Record the outputs (and with ``include_inputs=True``: inputs) of ``modules`` (all).

        nnsight's form; ``inputs=`` is lenslab's older name for ``include_inputs=``. Returns a
        mapping from module name to an entry with ``.output``, ``.input``, ``.inputs`` (a list
        of entries, one per step, in a generation); see engine/cache.py. Tensors are detached
        and moved to ``device`` (None: left where they are), cast to ``dtype`` if given.
        """
        return open_cache(
            self,
            modules,
            inputs=inputs,
            include_inputs=include_inputs,
            include_output=include_output,
            device=device,
            dtype=dtype,
            detach=detach,
        )

    def barrier(self, n: int) -> Barrier:
        """A barrier that ``n`` invokes' bodies must all reach before any goes on (barrier.py)."""
        return Barrier(self.model._module, n)

    def stop(self) -> None:
        """End the trace here: later modules do not run; values read so far stay."""
        if not self._is_open:
            raise TraceStateError("tracer.stop() can only be called inside its with-block.")
        raise StopTrace

    # -- the with statement ----------------------------------------------------------------------

    def _enter(self) -> Tracer:
        """``__enter__`` (see the class docstring): if this raises, ``_close`` follows."""
        if not self._scan:  # a scan needs no weights: a lazy model stays on the meta device
            self.model._ready()
        frame = sys._getframe(1)  # the caller's: Guarded.__enter__ is C, with no frame
        here = self._opened_on = getcurrent()
        opened_here = _open.get(here)
        if opened_here:
            _refuse_interleaving(self.model, frame, opened_here)
        else:
            opened_here = _open[here] = []
        self._frame = frame
        self._is_open = True
        open_trace(self.saved)
        opened_here.append(self)
        block = source.block_at(frame)
        if self._inputs is not None:
            prepared = self.model._prepare(*self._inputs)
            if self._validate:
                self._unskip = self._defer(prepared, block, frame, "validate=True", self)
            else:
                self._start_inline(prepared, block, frame)
        if (
            block is not None
            and block.saves_anything
            and self._unskip is None  # not a validated body, already deferred
            and rerun.wanted(frame, block)
        ):
            self._rerun = rerun.Rerun(frame, block, self)  # type: ignore[arg-type]
        self._block = block
        return self

    def _exit(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        """``__exit__`` before the cleanup; ``_close`` follows whatever this raises."""
        if self._unskip is not None:
            self._restore_tracing()
        if self._rerun is not None:
            error_type = self._run_rewritten(error_type)
            if error_type is None:  # the skipped body ran
                error_type = frames.SkipBody
        elif error is not None and (converted := self._converted(error)):
            raise converted.with_traceback(ending_at_user_code(traceback)) from None
        if error_type is None or error_type is frames.SkipBody:
            if self._interleaver is None and not self._pending:
                raise InputError(
                    "this trace got no inputs: pass them to model.trace('prompt') or to "
                    "tracer.invoke('prompt') blocks inside it."
                )
            self._finish_inline()
            if self._validate:
                self._run_deferred(list(self._pending), scan=True)
            if self._pending:
                self._flush()
        return error_type in (StopTrace, frames.SkipBody)

    def _converted(self, error: BaseException, block: Block | None = None) -> LensError | None:
        """The user's error for what the body raised, where lenslab knows better than the raw
        one: a missing ``.save()``, or a scan asked for a value."""
        converted = rerun.save_error(error, block if block is not None else self._block)
        if converted is None and self._scan:
            converted = needs_values(error)
        return converted

    def _run_rewritten(self, error_type: type[BaseException] | None) -> type[BaseException] | None:
        """Run the body skipped for rerun.py, here in ``__exit__``; what to go on with."""
        body = self._rerun
        assert body is not None
        body.restore_tracing()
        self._rerun = None
        if error_type is not frames.SkipBody:  # failed before the body began
            return error_type
        try:
            body.run(quiet=(StopTrace,))
        except BaseException as error:
            if isinstance(error.__context__, frames.SkipBody):  # how the body was skipped
                error.__context__ = None
            trimmed = rerun.from_the_body(error.__traceback__)
            converted = self._converted(error, body.block)
            if converted is not None:
                raise converted.with_traceback(trimmed) from None
            raise error.with_traceback(trimmed)  # noqa: B904 (it is the same exception)
        return None

    # -- inline runs ---------------------------------------------------------------------------

    def _start_inline(self, prepared: Any, block: Block | None, frame: FrameType) -> None:
        run = self.model._batch([prepared], self.method, self.options)
        interleaver = self._new_interleaver(run, scan=self._scan)
        run_through = False
        if block is not None:
            lookup = _lookup(frame)
            targets, resolved = self._targets(block, lookup)
            run_through = (
                resolved
                and self.method == "forward"
                and not interleaver.mediators  # no model.edit() bodies: they pause
                and block.passive is not None
                and block.passive.holds(lookup, self._is_own_envoy)
            )
            # A body that never pauses mid-forward needs no hooks on the enclosing blocks.
            interleaver.watch_each(targets, enclosing=not run_through)
        else:  # no source to tell what the body reads: keep everything, so any order works
            interleaver.watch_all()
        self._interleaver = interleaver
        self._inline = Mediator(interleaver, run.rows[0])
        interleaver.unattended = run_through

    def _finish_inline(self) -> None:
        mediator = self._inline
        if mediator is None:
            return
        interleaver = mediator.interleaver
        mediator.finish()
        if interleaver.unattended and not interleaver.finished:  # a passive body read nothing
            interleaver.run_here()
        elif not interleaver.finished:
            interleaver.resume()
        self._result = interleaver.result
        mediator.deactivate()
        self._inline = None

    # -- deferred bodies ---------------------------------------------------------------------------

    def _defer(
        self, prepared: Any, block: Block | None, frame: FrameType, what: str, bound: Any
    ) -> Callable[[], None] | None:
        """Skip the body starting in ``frame`` (``as`` binds ``bound``) and queue it.

        Returns what the block's ``__exit__`` must call to undo the skip (see
        ``frames.skip_body``), or None when the body has no source and must run inline.
        """
        if block is None or block.body is None:
            if what == "validate=True":
                raise TraceStateError(
                    "validate=True runs the block twice (fake tensors first), so it needs the "
                    "block's source: a file or notebook cell, and no return/yield inside."
                )
            return None
        namespace = rerun.namespace_of(frame)
        name = frames.as_name(frame)
        if name is not None:  # the body runs later, in this snapshot: ``as`` binds there too
            namespace[name] = bound
        self._pending.append(Deferred(prepared, block, namespace))
        return frames.skip_body(frame, bound, block.body_line)

    def _restore_tracing(self) -> None:
        if self._unskip is not None:
            self._unskip()  # idempotent: forgotten only once it has run
            self._unskip = None

    def _flush(self) -> None:
        """Run the pending bodies inside one batched forward, then bind their names here."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if all(body.prepared is None for body in pending):
            raise InputError(
                "none of this trace's tracer.invoke() blocks has inputs: an invoke without "
                "inputs runs over the rows of those that have them. Give one its inputs, "
                "tracer.invoke('prompt'), or pass them to model.trace('prompt')."
            )
        self._result = self._run_deferred(pending, scan=self._scan)
        written: dict[str, Any] = {}
        for body in pending:
            written.update(
                (name, body.namespace[name])
                for name in body.block.assigned
                if name in body.namespace
            )
        assert self._frame is not None
        frames.write_names(self._frame, written)

    def _run_deferred(self, pending: list[Deferred], scan: bool) -> Any:
        """One run of ``pending``'s bodies; a scan runs copies, on fake tensors, for errors only."""
        inputs = [body.prepared for body in pending if body.prepared is not None]
        run = self.model._batch(inputs, self.method, self.options)
        given = iter(run.rows)  # promptless invokes see the whole batch
        rows_of = [next(given) if body.prepared is not None else None for body in pending]
        interleaver = self._new_interleaver(run, scan=scan)
        self._interleaver = interleaver
        namespaces = [dict(b.namespace) if scan else b.namespace for b in pending]
        for index, (body, rows) in enumerate(zip(pending, rows_of)):
            namespace = namespaces[index]
            mediator = Mediator(
                interleaver, rows, functools.partial(exec, body.block.body, namespace)
            )
            mediator.after_switch = _publisher(body.block.assigned, namespaces, index)
            targets, _ = self._targets(body.block, namespace.get)
            interleaver.watch_each(targets)
            if index > 0 and targets:
                mediator.start_on = frozenset(module for module, _ in targets)
        self._invoking = True
        try:
            interleaver.resume()
        finally:
            self._invoking = False
        failure = interleaver.failure
        if failure is not None and not isinstance(failure, StopTrace):
            if scan and not isinstance(failure, LensError):
                raise _scan_failure(failure, pending) from failure
            raise _explained(failure, pending)
        return interleaver.result

    # -- shared --------------------------------------------------------------------------------

    def _new_interleaver(self, run: Run, scan: bool) -> Interleaver:
        """An interleaver for ``run``, with this trace's caches and the model's persistent edits."""
        if scan:
            run.call = shapes_only(run.call, self.model._module)
        interleaver = Interleaver(self.model._module, run)
        self._interleaver = interleaver  # from here on, _close() removes whatever it hooked
        for cache in self._caches:
            cache.attach(interleaver)
        for edit in getattr(self.model, "_edits", ()):
            namespace = dict(edit.namespace)
            body = Mediator(interleaver, None, functools.partial(exec, edit.block.body, namespace))
            body.edit = True
            interleaver.watch_each(self._targets(edit.block, namespace.get)[0])
        return interleaver

    def _targets(
        self, block: Block, lookup: Callable[[str], Any]
    ) -> tuple[list[tuple[nn.Module, str]], bool]:
        """The (module, kind) values the body's source reads, to keep as the forward passes
        them, so any read order works; and whether every read named at least one module."""
        targets: list[tuple[nn.Module, str]] = []
        resolved = True
        for access in block.accesses:
            root = lookup(access.root)
            if not self._is_own_envoy(root):
                resolved = False
                continue
            steps = access.steps
            if access.variable:
                steps = tuple(
                    (step, arg.evaluate(lookup, block.assigned) if isinstance(arg, Index) else arg)
                    for step, arg in steps
                )
            found = root._watch_targets(steps, access.kind)
            targets.extend(found)
            resolved = resolved and bool(found)
        return targets, resolved

    def _forget(self) -> None:
        here = self._opened_on
        stack = _open.get(here)
        if stack is not None:
            if self in stack:
                stack.remove(self)
            if not stack:  # also one left empty by an interrupted _enter
                _open.pop(here, None)

    def _is_own_envoy(self, value: Any) -> bool:
        return isinstance(value, Envoy) and value._root._module is self.model._module

    def _close(self) -> None:
        """Undo all that ``_enter`` / ``_exit`` set up, also after they were cut short.

        Guarded calls this again when an interrupt cuts it short: each step undoes one thing,
        is safe to repeat, and forgets what it undid only after undoing it. The caller's frame,
        pending bodies' namespaces and the run are dropped here, so nothing of the forward
        outlives the block (the frame holds this tracer: a cycle only the collector would end).
        """
        if self._is_open and not self._notified:
            observers.trace_closed(self)
            self._notified = True
        self._restore_tracing()
        if self._rerun is not None:
            self._rerun.restore_tracing()
            self._rerun = None
        self._forget()
        if self._inline is not None:
            self._inline.deactivate()
            self._inline = None
        if self._interleaver is not None:
            self._interleaver.abort()
            self._interleaver = None
        self._pending.clear()
        self._frame = None
        if self._is_open:
            close_trace(self.saved)
            self._is_open = False


class Invoker(Guarded):
    """``with tracer.invoke(inputs):`` (see the module docstring for how it runs).

    Guarded (see Tracer) so that the skip of its body is undone whatever interrupts it.
    """

    def __init__(self, tracer: Tracer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.tracer = tracer
        self.prepared = tracer.model._prepare(args, kwargs) if args or kwargs else None
        self._inline = False
        self._unskip: Callable[[], None] | None = None

    @property
    def inputs(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """This invoke's own inputs as the model's forward takes them: ``(args, kwargs)``.

        For a language model: ``((), {"input_ids": ..., "attention_mask": ...})``, this invoke's
        rows alone (before other invokes' rows are batched and padded with them).
        """
        if self.prepared is None:
            raise InputError(
                "invoker.inputs: this tracer.invoke() has no inputs of its own (it runs over "
                "the rows of the invokes that have them); read .inputs of one of those."
            )
        return self.tracer.model._call_inputs(self.prepared)

    def _enter(self) -> Invoker:
        frame = sys._getframe(1)  # the caller's: Guarded.__enter__ is C, with no frame
        block = source.block_at(frame)
        tracer = self.tracer
        self._unskip = tracer._defer(self.prepared, block, frame, "invoke", self)
        if self._unskip is None:
            if self.prepared is None:
                raise TraceStateError(
                    "tracer.invoke() without inputs joins the forward pass of the trace's other "
                    "invokes, which lenslab arranges from the block's source; this block has "
                    "none (code run by exec, a %%time cell, or a body with return/yield). Read "
                    "the values inside the invokes that have inputs instead."
                )
            _warn_no_source()
            tracer._flush()
            tracer._start_inline(self.prepared, block, frame)
            self._inline = tracer._invoking = True
        return self

    def _exit(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        tracer = self.tracer
        self._close()
        if error_type is frames.SkipBody:
            return True
        if not self._inline:
            return False
        tracer._invoking = False
        if error_type is None:
            tracer._finish_inline()
        elif tracer._interleaver is not None:
            tracer._interleaver.abort()
        return False

    def _close(self) -> None:
        if self._unskip is not None:
            self._unskip()  # idempotent: forgotten only once it has run
            self._unskip = None


def _refuse_interleaving(model: Traceable, frame: FrameType, opened: list[Tracer]) -> None:
    """Refuse a second trace of ``model`` while another is paused off this call stack.

    Asyncio tasks and generators can suspend a with-block and open another on the same thread.
    Reads are routed to the innermost open trace of a model, so the suspended one would later
    read this one's values. A trace opened *inside* another's body (a helper function) is fine.
    """
    for other in opened:
        if other.model._module is model._module and not _on_stack(other._frame, frame):
            raise TraceStateError(
                "another trace of this model is open on this thread, suspended outside the "
                "current call (an asyncio task or a generator paused inside its with-block); "
                "the two traces' reads could not be told apart. Finish one trace before "
                "starting the next, or trace from separate threads."
            )


def _on_stack(target: FrameType | None, frame: FrameType | None) -> bool:
    while frame is not None:
        if frame is target:
            return True
        frame = frame.f_back
    return False


def _lookup(frame: FrameType) -> Callable[[str], Any]:
    local, global_ = frame.f_locals, frame.f_globals

    def lookup(name: str) -> Any:
        return local[name] if name in local else global_.get(name)

    return lookup


def _publisher(
    assigned: frozenset[str], namespaces: list[dict[str, Any]], index: int
) -> Callable[[], None]:
    """Copy names an invoke body just bound into the namespaces of the invokes after it."""
    own = namespaces[index]
    later = namespaces[index + 1 :]
    published: dict[str, Any] = {}
    if not later or not assigned:
        return lambda: None

    def publish() -> None:
        for name in assigned:
            if name in own and published.get(name, published) is not own[name]:
                published[name] = value = own[name]
                for namespace in later:
                    namespace[name] = value

    return publish


def _explained(error: BaseException, pending: list[Deferred]) -> BaseException:
    """Add a hint when an invoke used a name that an earlier invoke binds only later."""
    if (
        isinstance(error, NameError)
        and getattr(error, "name", None)
        and sys.version_info
        >= (
            3,
            11,
        )
    ):
        for index, body in enumerate(pending):
            if error.name in body.block.assigned:
                error.add_note(
                    f"lenslab: invoke {index} binds {error.name!r}, but only after the point in "
                    "the forward pass where a later invoke read it. Values pass between invokes "
                    "in forward order: bind it at the same or an earlier module."
                )
                break
    return error


def _scan_failure(error: BaseException, pending: list[Deferred]) -> LensError:
    """Name the user's line where the fake-tensor run of a validated block failed."""
    files = {body.block.body.co_filename for body in pending if body.block.body is not None}
    lines = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in files]
    where = f"line {lines[-1].lineno}: {lines[-1].line}" if lines else "the block"
    converted = needs_values(error, where)
    if converted is not None:
        return converted
    return EditError(
        f"validate=True: on fake tensors (before any real compute), {where} fails: "
        f"{type(error).__name__}: {error}"
    )


_warned_no_source = False


def _warn_no_source() -> None:
    global _warned_no_source
    if not _warned_no_source:
        _warned_no_source = True
        warnings.warn(
            "lenslab cannot read this tracer.invoke(...) block's source (code run from a string, "
            "or a body with return/yield), so each such invoke runs its own forward pass instead "
            "of sharing one batch. Values are the same; only speed differs.",
            LensWarning,
            stacklevel=3,
        )
