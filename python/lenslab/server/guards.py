"""What a remote block's code runs with: safe builtins, module proxies and runtime guards.

RestrictedPython turns each attribute read into ``_getattr_(obj, name)``, each write target into
``_write_(obj)``, and so on; the functions here decide. The rule of thumb: remote code may read
anything a trace offers and edit values inside traces, but never change the hosted model, its
tokenizer or config, torch's global state, or touch files, network and processes.
"""

from __future__ import annotations

import builtins
import functools
import io
import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from torch import nn

from ..engine.envoy import Envoy
from ..engine.saving import OutputTuple
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


ENVOY_NAMES = frozenset(
    {
        "output", "input", "inputs", "next", "trace", "generate", "scan", "session", "edit",
        "clear_edits", "tokenizer", "config", "generator", "layers", "layers_output",
        "layers_input", "attentions_output", "mlps_output", "attention_probabilities",
        "token_embeddings", "ln_final", "lm_head", "logits", "next_token_probs", "num_layers",
        "hidden_size", "device", "dispatched", "training",
    }
)  # fmt: skip

TOKENIZER_NAMES = frozenset(
    {
        "encode", "decode", "batch_decode", "convert_ids_to_tokens", "convert_tokens_to_ids",
        "tokenize", "vocab_size", "eos_token", "eos_token_id", "bos_token", "bos_token_id",
        "pad_token", "pad_token_id", "unk_token", "unk_token_id", "all_special_ids",
        "all_special_tokens", "padding_side", "model_max_length", "name_or_path",
        "apply_chat_template", "get_vocab",
    }
)  # fmt: skip

_MISSING = object()


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """``obj.name`` in remote code (see the module docstring for the rule)."""
    problem = _read_problem(obj, name)
    if problem is not None:
        raise SandboxError(problem)
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def _read_problem(obj: Any, name: str) -> str | None:
    problem = attribute_problem(name)
    if problem is not None:
        return problem + "."
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__!r} is not available in remote code."
    if isinstance(obj, Envoy):
        module = obj._module
        if (
            name in ENVOY_NAMES
            or name in module._modules
            or name in module._parameters
            or name in module._buffers
        ):
            return None
        value = getattr(module, name, None)
        if callable(value):
            return (
                f"{obj._name}.{name}() is a method of the hosted module; remote code reads and "
                "edits values inside traces, but cannot call methods that may change the model."
            )
        return None
    kinds = {cls.__name__ for cls in type(obj).__mro__}
    tokenizer = "PreTrainedTokenizerBase" in kinds or "TokenizersBackend" in kinds
    if tokenizer and name not in TOKENIZER_NAMES:
        return f"tokenizer.{name} is not available in remote code."
    config = "PretrainedConfig" in kinds or "GenerationConfig" in kinds
    if config and callable(getattr(obj, name, None)):
        return f"config.{name}() is not available in remote code; read its values instead."
    return None


_WRITABLE = (torch.Tensor, list, dict, OutputTuple, Envoy)


def guarded_write(obj: Any) -> Any:
    """The target of ``obj[...] = v`` / ``obj.output = v`` in remote code."""
    if isinstance(obj, nn.Parameter):
        raise SandboxError("the hosted model's weights are read-only in remote code.")
    if isinstance(obj, _WRITABLE) or type(obj).__name__ == "Indexed" or _is_output(obj):
        return obj
    raise SandboxError(f"remote code cannot modify a {type(obj).__name__}.")


def _is_output(obj: Any) -> bool:
    return any(cls.__name__ == "ModelOutput" for cls in type(obj).__mro__)


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
    """Collects what the block prints, to send back with the result."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def print(self, *values: Any, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
        print(*values, sep=sep, end=end, file=self.buffer)

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
