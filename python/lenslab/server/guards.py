"""What a remote block's code runs with: safe builtins, module proxies and runtime guards.

RestrictedPython turns each attribute read into ``_getattr_(obj, name)``, each write target into
``_write_(obj)``, and so on; the functions here decide. The rule of thumb: remote code may read
anything a trace offers and edit values inside traces, but never change the hosted model, its
tokenizer or config, torch's global state, or touch files, network and processes.
"""

from __future__ import annotations

import builtins
import copy
import functools
import io
import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase
from transformers.configuration_utils import PreTrainedConfig
from transformers.utils import ModelOutput

from ..engine.envoy import Envoy
from ..engine.saving import OutputTuple
from ..models.standard import Indexed
from .allowlist import is_plain, read_problem
from .policy import ALLOWED_MODULES, BUILTINS, attribute_problem, module_attribute_problem


class SandboxError(PermissionError):
    """Remote code tried something the server does not allow."""


class SafeModule:
    """An allowed module as remote code sees it: its public functions and types only."""

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        self.__name = name
        vars(self).update(members)

    def __repr__(self) -> str:
        return f"<module {self.__name!r} (lenslab sandbox)>"


@functools.cache
def module_proxy(name: str) -> SafeModule:
    """The sandbox view of ``name`` (one of ``ALLOWED_MODULES``)."""
    module = __import__(name, fromlist=["_"])
    members: dict[str, Any] = {}
    for attr in dir(module):
        if attr.startswith("_") or module_attribute_problem(attr):
            continue
        try:
            value = getattr(module, attr)
        except Exception:
            continue
        if isinstance(value, types.ModuleType):
            if f"{name}.{attr}" in ALLOWED_MODULES:
                members[attr] = module_proxy(f"{name}.{attr}")
            continue
        members[attr] = value
    return SafeModule(name, members)


def guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> SafeModule:
    """``import torch`` and friends give the sandbox proxies; anything else is refused."""
    if level or name not in ALLOWED_MODULES:
        raise ImportError(f"importing {name!r} is not allowed in remote code")
    return module_proxy(name if fromlist else name.split(".")[0])


_MISSING = object()


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """``obj.name`` in remote code: allowed by ``allowlist.py`` or refused, naming ``name``."""
    problem = attribute_problem(name)
    if problem is None:
        problem = read_problem(obj, name, _module_member)
    else:
        problem += "."
    if problem is not None:
        raise SandboxError(problem)
    value = getattr(obj, name) if default is _MISSING else getattr(obj, name, default)
    if isinstance(value, (list, dict)) and isinstance(obj, _HOSTED) and is_plain(value):
        return copy.deepcopy(value)  # a config's dict read is the block's own to change
    return value


def _module_member(obj: Any, name: str) -> bool:
    return isinstance(obj, SafeModule) and name in vars(obj)


_HOSTED = (Envoy, PreTrainedConfig, GenerationConfig, PreTrainedTokenizerBase)


_WRITABLE = (torch.Tensor, list, dict, OutputTuple, Envoy, Indexed, ModelOutput)


def guarded_write(obj: Any) -> Any:
    """The target of ``obj[...] = v`` / ``obj.output = v`` in remote code."""
    if isinstance(obj, nn.Parameter):
        raise SandboxError("the hosted model's weights are read-only in remote code.")
    if isinstance(obj, _WRITABLE):
        return obj
    raise SandboxError(f"remote code cannot modify a {type(obj).__name__}.")


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
    "@=": operator.imatmul,
}  # fmt: skip


def inplace(op: str, target: Any, value: Any) -> Any:
    """``target op= value`` (in place where the type does it in place, as in plain Python)."""
    if isinstance(target, nn.Parameter):
        raise SandboxError("the hosted model's weights are read-only in remote code.")
    return _INPLACE[op](target, value)


def guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


class Printed:
    """Collects what the block prints, to send back with the result, up to ``limit`` characters.

    Past the limit the rest is counted, not kept, so a print loop cannot grow the worker's memory
    or the reply past the server's result limit.
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self.buffer = io.StringIO()
        self.limit = limit
        self.kept = 0
        self.dropped = 0

    def print(self, *values: Any, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
        text = io.StringIO()
        print(*values, sep=sep, end=end, file=text)
        self.write(text.getvalue())

    def write(self, text: str) -> None:
        room = max(self.limit - self.kept, 0)
        self.buffer.write(text[:room])
        self.kept += min(len(text), room)
        self.dropped += max(len(text) - room, 0)

    def text(self, limit: int | None = None) -> str:
        """What was printed, cut to ``limit`` characters with a note saying how much was cut."""
        kept = self.buffer.getvalue()
        dropped = self.dropped
        if limit is not None and len(kept) > limit:
            dropped += len(kept) - limit
            kept = kept[:limit]
        if not dropped:
            return kept
        return kept + (
            f"\n[lenslab server: {dropped} more characters of printed output were dropped, "
            "over this server's result limit; print less, or bind values instead]\n"
        )

    def collector(self, _getattr_: Any = None) -> Printed:  # RestrictedPython's _print_
        return self

    def _call_print(self, *values: Any, **kwargs: Any) -> None:
        self.print(*values, **kwargs)


def job_globals(printed: Printed) -> dict[str, Any]:
    """The globals a remote block starts with (its own names are added by the runner)."""
    safe = {name: getattr(builtins, name) for name in BUILTINS if hasattr(builtins, name)}
    safe["print"] = printed.print
    safe["__import__"] = guarded_import
    return {
        "__builtins__": safe,
        "__name__": "lenslab_remote",
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_inplacevar_": inplace,
        "_print_": printed.collector,
    }
