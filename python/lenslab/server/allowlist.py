"""What remote code may read on each kind of object: allow-lists keyed by class identity.

Every attribute read in a remote block (main body, invokes, ``edit()``, sessions, step loops)
goes through ``read_problem``. An object's class (found by walking its MRO against classes
imported here, never by class *name*) picks its allow-list; an object of a class not listed has
no readable attributes at all. So a method that a dependency adds or renames tomorrow is
refused until someone adds it here on purpose, instead of being reachable until someone
notices. ``static_names`` is the union of everything any list allows, for the check that runs
before a job does: a name no object allows cannot succeed, so it is refused up front.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import torch
from torch import nn
from transformers import BatchEncoding, GenerationConfig, PreTrainedTokenizerBase
from transformers.configuration_utils import PreTrainedConfig
from transformers.utils import ModelOutput

from ..engine.cache import Cache, CacheEntry
from ..engine.envoy import Envoy
from ..engine.saving import OutputTuple
from ..engine.tracer import Tracer
from ..models.module import NNsight

# -- the lenslab API (documented in docs/) ---------------------------------------------------

ENVOY_API = frozenset({"output", "input", "inputs", "next"})
MODEL_API = frozenset(
    {
        "trace", "generate", "scan", "session", "edit", "clear_edits", "tokenizer", "config",
        "generator", "layers", "layers_output", "layers_input", "attentions_output",
        "mlps_output", "attention_probabilities", "token_embeddings", "ln_final", "lm_head",
        "logits", "next_token_probs", "num_layers", "hidden_size", "device", "dispatched",
        "training",
    }
)  # fmt: skip
TRACER_API = frozenset({"invoke", "all", "iter", "next", "stop", "result", "cache", "text"})

TOKENIZER_API = frozenset(
    {
        "encode", "decode", "batch_decode", "convert_ids_to_tokens", "convert_tokens_to_ids",
        "tokenize", "vocab_size", "eos_token", "eos_token_id", "bos_token", "bos_token_id",
        "pad_token", "pad_token_id", "unk_token", "unk_token_id", "all_special_ids",
        "all_special_tokens", "padding_side", "model_max_length", "name_or_path", "get_vocab",
    }
)  # fmt: skip

# -- tensors: torch's own ops plus the properties and conversions of a value ---------------------

TENSOR_EXTRAS = frozenset(
    {
        "shape", "dtype", "device", "ndim", "T", "mT", "H", "mH", "grad", "requires_grad",
        "is_leaf", "is_cuda", "is_cpu", "is_meta", "layout", "item", "tolist", "size", "dim",
        "stride", "nelement", "ndimension", "element_size", "itemsize", "nbytes", "view",
        "view_as", "reshape_as", "expand", "expand_as", "repeat", "contiguous", "is_contiguous",
        "to", "cpu", "float", "double", "half", "bfloat16", "int", "long", "short", "bool",
        "byte", "char", "type_as", "backward", "retain_grad", "retains_grad", "save", "copy_",
        "zero_", "fill_diagonal_", "uniform_", "exponential_", "geometric_", "log_normal_",
        "cauchy_", "random_", "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor",
        "unfold", "sum_to_size", "requires_grad_", "values", "indices",
    }
)  # fmt: skip

NOT_TENSOR_OPS = frozenset({"from_file", "set_", "storage", "save", "load"})


def _is_op(name: str) -> bool:
    function = getattr(torch, name, None)
    return isinstance(function, (types.BuiltinFunctionType, types.FunctionType))


@cache
def tensor_names() -> frozenset[str]:
    """Tensor methods that are torch ops (``x.softmax`` as ``torch.softmax``), and extras."""
    ops = {
        name
        for name in dir(torch.Tensor)
        if not name.startswith("_")
        and name not in NOT_TENSOR_OPS
        and (_is_op(name) or (name.endswith("_") and _is_op(name[:-1])))
    }
    return frozenset(ops | TENSOR_EXTRAS)


# -- plain values the block makes itself -------------------------------------------------------


def _public(cls: type, *, without: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(n for n in dir(cls) if not n.startswith("_")) - frozenset(without)


STR_NAMES = _public(str, without={"format", "format_map"})  # "{0.__class__}".format(x)
FIXED: dict[type, frozenset[str]] = {
    str: STR_NAMES,
    bytes: _public(bytes),
    int: _public(int),
    float: _public(float),
    complex: _public(complex),
    list: _public(list),
    tuple: _public(tuple),
    dict: _public(dict),
    set: _public(set),
    frozenset: _public(frozenset),
    range: _public(range),
    slice: frozenset({"start", "stop", "step", "indices"}),
    BaseException: frozenset({"args"}),
    torch.Size: _public(tuple) | {"numel"},
    torch.dtype: frozenset({"is_floating_point", "is_complex", "is_signed", "itemsize"}),
    torch.device: frozenset({"type", "index"}),
    torch.finfo: frozenset({"bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"}),
    torch.iinfo: frozenset({"bits", "max", "min"}),
    OutputTuple: frozenset({"count", "index", "save"}),
    Cache: _public(dict),
    CacheEntry: frozenset({"output", "input", "inputs"}),
    BatchEncoding: frozenset({"input_ids", "attention_mask", "keys", "values", "items", "get"}),
    PreTrainedTokenizerBase: TOKENIZER_API,
    Tracer: TRACER_API,
}

MODEL_OUTPUT_METHODS = frozenset({"keys", "values", "items", "get", "to_tuple", "save"})
CONFIG_METHODS = frozenset({"to_dict"})
PLAIN = (type(None), bool, int, float, str, torch.dtype)


def _return_types() -> dict[type, frozenset[str]]:
    """``torch.topk(...)``'s ``.values`` / ``.indices`` and the other named results."""
    found = {}
    for value in vars(torch.return_types).values():
        if isinstance(value, type) and issubclass(value, tuple):
            found[value] = _public(value)
    return found


FIXED.update(_return_types())


def is_plain(value: Any, depth: int = 0) -> bool:
    """Data with no behaviour: numbers, strings, and lists/tuples/dicts of them."""
    if isinstance(value, PLAIN):
        return True
    if depth > 4:
        return False
    if isinstance(value, (list, tuple)):
        return all(is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in value.items())
    return False


# -- objects the block did not create -----------------------------------------------------------


_ABSENT = object()


def _envoy_allows(envoy: Envoy, name: str) -> bool:
    module: nn.Module = envoy._module
    if name in ENVOY_API or (isinstance(envoy, NNsight) and name in MODEL_API):
        return True
    if name in module._modules or name in module._parameters or name in module._buffers:
        return True
    if name in vars(module):
        return is_plain(vars(module)[name])  # head_dim, layer_idx...
    # A name neither has at all: let the engine raise its ModulePathError ("did you mean").
    # Not for modules that answer unknown names themselves (wrappers forwarding to another).
    plain_lookup = type(module).__getattr__ is nn.Module.__getattr__
    missing = inspect.getattr_static(module, name, _ABSENT) is _ABSENT
    return plain_lookup and missing and inspect.getattr_static(envoy, name, _ABSENT) is _ABSENT


def _config_values(config: Any) -> set[str]:
    """A config's settings: its own values, its aliases (GPT-2's ``hidden_size``) and to_dict's."""
    names = {n for n, v in vars(config).items() if is_plain(v)}
    names |= set(getattr(type(config), "attribute_map", {}))
    return names | {"model_type", "output_attentions"}


def _config_allows(config: Any, name: str) -> bool:
    return name in CONFIG_METHODS or name in _config_values(config)


def _output_fields(cls: type) -> set[str]:
    """A model output's fields, and its properties (renamed fields: ``past_key_values``)."""
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for base in cls.__mro__:
        if issubclass(base, ModelOutput):
            names |= {n for n, v in vars(base).items() if isinstance(v, property)}
    return names


def _output_allows(output: ModelOutput, name: str) -> bool:
    return name in MODEL_OUTPUT_METHODS or name in _output_fields(type(output))


CHECKS: list[tuple[type, Callable[[Any, str], bool]]] = [
    (PreTrainedConfig, _config_allows),
    (GenerationConfig, _config_allows),
    (ModelOutput, _output_allows),
]


def read_problem(obj: Any, name: str, modules: Callable[[Any, str], bool]) -> str | None:
    """Why remote code may not read ``obj.name``; None if it may.

    ``modules(obj, name)`` answers for the sandbox's module proxies (``torch``, ``math``).
    """
    if isinstance(obj, torch.Tensor):
        if name in tensor_names():
            return None
        return _refused(torch.Tensor, name)
    kind = type(obj)
    if isinstance(obj, Envoy):
        if _envoy_allows(obj, name):
            return None
        return (
            f'"{name}" of {obj._name} is not available in remote code: modules give .output, '
            ".input, .inputs, .next(), their children, weights and plain settings; a method "
            "that may change the hosted model is refused"
        )
    for cls, allows in CHECKS:
        if isinstance(obj, cls):
            return None if allows(obj, name) else _refused(kind, name)
    if modules(obj, name):
        return None
    for cls in kind.__mro__:
        names = FIXED.get(cls)
        if names is not None:
            return None if name in names else _refused(kind, name)
    return _refused(kind, name)


def _refused(kind: type, name: str) -> str:
    what = "a class" if issubclass(kind, type) else f"a {kind.__name__}"
    return (
        f'"{name}" of {what} is not available in remote code: a block may read tensor ops, '
        "the documented lenslab API (module .output/.input, tracer.invoke/all/iter, "
        "model.tokenizer.decode/encode, config values) and the methods of values it makes"
    )


def static_refusals(model: Any, module_members: Iterable[str]) -> frozenset[str]:
    """Attribute names that exist on objects a block can reach but that no allow-list allows.

    The up-front check refuses these (``backend_tokenizer``, ``from_json_file``,
    ``set_submodule``...); a name that exists nowhere is left to fail at run time with the
    engine's own message (a mistyped module path gets its "did you mean").
    """
    allowed: set[str] = set(tensor_names()) | ENVOY_API | MODEL_API | set(module_members)
    allowed |= MODEL_OUTPUT_METHODS | CONFIG_METHODS
    for names in FIXED.values():
        allowed |= names
    module = model._module
    reachable: set[str] = set(dir(type)) | set(dir(nn.Module)) | set(dir(model))
    for sub in module.modules():
        allowed.update(sub._modules)
        allowed.update(sub._parameters)
        allowed.update(sub._buffers)
        allowed.update(n for n, v in vars(sub).items() if is_plain(v))
        reachable.update(dir(type(sub)))
    for config in (module.config, getattr(module, "generation_config", None)):
        if config is not None:
            allowed.update(_config_values(config))
            reachable.update(dir(config))
    for output in _subclasses(ModelOutput):
        allowed.update(_output_fields(output))
        reachable.update(dir(output))
    for obj in (model.tokenizer, torch.Tensor, Tracer, *FIXED):
        reachable.update(dir(obj))
    return frozenset(n for n in reachable - allowed if not n.startswith("_"))


def _subclasses(cls: type) -> set[type]:
    found, todo = set(), [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found
