"""NNsight: trace any ``torch.nn.Module``.

The model is the root envoy of its own module tree; ``model.trace(*args, **kwargs)`` calls the
module with exactly those arguments. Several invokes are concatenated along the first dimension
of every tensor argument, so each invoke owns a contiguous block of batch rows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..engine.editing import Edit, EditBlock
from ..engine.envoy import Envoy
from ..engine.interleaver import Run
from ..engine.session import Session
from ..engine.tracer import Tracer
from ..errors import InputError
from .aliases import Rename, build_aliases, split_rename

if TYPE_CHECKING:
    from ..remote.tracer import RemoteTracer


@dataclass
class Prepared:
    """One invoke's inputs, ready to batch."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    size: int  # batch rows this invoke owns


class NNsight(Envoy):
    """Wrap ``module`` so its internals can be read and edited inside ``model.trace(...)``.

    Examples:
        >>> net = NNsight(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))
        >>> with net.trace(torch.ones(2, 4)):
        ...     hidden = net[0].output.save()
    """

    def __init__(self, module: nn.Module, *, rename: Rename | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise InputError(
                f"NNsight wraps a torch.nn.Module, got {type(module).__name__}; for a Hugging "
                "Face checkpoint name use LanguageModel(...)."
            )
        super().__init__(module, "model")
        self._edits: list[Edit] = []
        if rename:
            self._set_aliases(split_rename(module, rename, ())[1])

    def _set_aliases(self, aliases: dict[str, list[str]]) -> None:
        """Install ``rename=`` aliases (models/aliases.py); none may hide a name in use."""
        if not aliases:
            return
        every = frozenset(n for n in dir(Envoy) if not n.startswith("_"))
        own = frozenset(n for n in dir(type(self)) if not n.startswith("_")) - self._free_names
        self._aliases = build_aliases(self._module, aliases, {"": every, "model": own})

    _free_names: frozenset[str] = frozenset()  # wrapper attributes an alias may stand for

    _hosted = False  # True on a lenslab server, where remote=True means "here"

    def trace(
        self,
        *args: Any,
        scan: bool = False,
        validate: bool = False,
        remote: bool = False,
        **kwargs: Any,
    ) -> Tracer | RemoteTracer:
        """Run the model on these inputs; the with-block reads and edits its internals.

        ``validate=True`` (or ``scan=True``) first runs the block on fake tensors, so an edit of
        the wrong shape fails at its line before any real compute. ``remote=True`` runs the
        block on a lenslab server instead (see lenslab/remote).
        """
        if remote and not self._hosted:
            from ..remote.tracer import RemoteTracer

            return RemoteTracer(self, "trace", args, {**kwargs, **_flag(scan or validate)})
        return Tracer(self, args, kwargs, validate=scan or validate)

    def scan(self, *args: Any, **kwargs: Any) -> Tracer:
        """Like ``trace``, on fake tensors: every value has its real shape and dtype, no data.

        Nothing is computed and the model is left exactly as it was.
        """
        return Tracer(self, args, kwargs, scan=True)

    def session(self, *, remote: bool = False) -> Session | RemoteTracer:
        """Group several traces: ``with model.session(): ...``; remote: all in one request."""
        if remote and not self._hosted:
            from ..remote.tracer import RemoteTracer

            return RemoteTracer(self, "session", (), {})
        return Session(self)

    def edit(self, *, inplace: bool = False) -> EditBlock:
        """Interventions for every later trace: ``with model.edit() as edited: ...``.

        By default the edits go to a copy that shares the weights (``edited``), leaving
        ``model`` as it was; ``inplace=True`` adds them to ``model`` itself.
        """
        return EditBlock(self if inplace else self._copy())

    def clear_edits(self) -> None:
        """Drop every edit added with ``model.edit(inplace=True)``."""
        self._edits = []

    def _copy(self) -> NNsight:
        """Another wrapper of the same module (same weights), with its own edits."""
        twin = copy.copy(self)
        for name in [k for k, v in twin.__dict__.items() if isinstance(v, Envoy)]:
            del twin.__dict__[name]  # children cached as attributes belong to ``self``
        twin._root, twin._children, twin._by_index = twin, {}, {}
        twin._edits = list(self._edits)
        twin.__dict__.pop("_generator_envoy", None)
        return twin

    # -- seams used by the tracer ------------------------------------------------------------

    def _ready(self) -> None:
        """Make the real weights available (lazy wrappers load them here)."""

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Prepared:
        size = 1  # the first tensor's first dimension: the batch
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                if value.dim() > 0:
                    size = value.shape[0]
                break
        return Prepared(args, kwargs, size)

    def _call_inputs(self, prepared: Prepared) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return prepared.args, dict(prepared.kwargs)

    def _batch(self, prepared: list[Prepared], method: str, options: dict[str, Any]) -> Run:
        if method != "forward":
            raise InputError(f"NNsight models only run forward passes, not {method!r}.")
        module = self._module
        if len(prepared) == 1:
            only = prepared[0]
            return Run(lambda: module(*only.args, **only.kwargs), [None], only.size)
        rows, start = [], 0
        for p in prepared:
            rows.append(slice(start, start + p.size))
            start += p.size
        args = tuple(
            _concat([p.args[i] for p in prepared], f"argument {i}")
            for i in range(_same_len([p.args for p in prepared]))
        )
        kwargs = {
            name: _concat([p.kwargs.get(name) for p in prepared], f"argument {name!r}")
            for name in prepared[0].kwargs
        }
        return Run(lambda: module(*args, **kwargs), rows, start)


def _flag(validate: bool) -> dict[str, Any]:
    return {"validate": True} if validate else {}


def _same_len(arg_lists: list[tuple[Any, ...]]) -> int:
    lengths = {len(a) for a in arg_lists}
    if len(lengths) != 1:
        raise InputError(
            "every tracer.invoke(...) must pass the same number of positional arguments, "
            f"got {sorted(lengths)}."
        )
    return lengths.pop()


def _concat(values: list[Any], what: str) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        if not all(isinstance(v, torch.Tensor) and v.shape[1:] == first.shape[1:] for v in values):
            shapes = [
                list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in values
            ]
            raise InputError(
                f"cannot batch the invokes' {what}: shapes {shapes} differ beyond the first "
                "(batch) dimension. Give every invoke inputs of the same trailing shape."
            )
        return torch.cat(values, dim=0)
    if any(v is not first and v != first for v in values):
        raise InputError(
            f"the invokes' {what} differ ({values!r}); non-tensor arguments must be equal "
            "across invokes of one trace."
        )
    return first
