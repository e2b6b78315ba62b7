"""Python values <-> the JSON encoding used inside wire documents (tensors set aside).

Sendable: None, bools, ints, floats (also nan/inf), strings, lists, tuples, dicts, tensors,
``torch.Size`` / dtype / device, slices, Hugging Face model outputs (their tensor fields), and
references that each side resolves itself: a module path of the traced model
(``{"$envoy": "model.model.layers[3]"}``) or an allowed module such as ``torch``.
Anything else is refused with its type named: nothing is ever pickled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

MAX_DEPTH = 32

Reference = Callable[[Any], "tuple[str, str] | None"]
Resolve = Callable[[str, str], Any]


class Unsendable(TypeError):
    """A value the wire format cannot carry."""


def encode(value: Any, tensors: dict[str, torch.Tensor], reference: Reference | None = None) -> Any:
    """``value`` as JSON-able data; its tensors are added to ``tensors`` (CPU, contiguous)."""
    return _encode(value, tensors, reference, 0)


def _encode(
    value: Any, tensors: dict[str, torch.Tensor], reference: Reference | None, depth: int
) -> Any:
    if depth > MAX_DEPTH:
        raise Unsendable(f"a structure nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensor = value.detach()
        if tensor.device.type == "meta":
            raise Unsendable("a tensor on the meta device (it has no data)")
        tensors[name] = tensor.to("cpu", copy=True).contiguous()
        return {"$tensor": name}
    if isinstance(value, torch.Size):
        return {"$size": list(value)}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"$device": str(value)}
    if isinstance(value, slice):
        return {
            "$slice": [
                _encode(p, tensors, reference, depth + 1)
                for p in (value.start, value.stop, value.step)
            ]
        }
    ref = reference(value) if reference is not None else None
    if ref is not None:
        return {"$" + ref[0]: ref[1]}
    if _is_model_output(value):
        fields = {}
        for key, item in value.items():
            try:
                fields[key] = _encode(item, tensors, reference, depth + 1)
            except Unsendable:  # a KV cache and the like: not worth sending
                continue
        return {"$output": type(value).__name__, "fields": fields}
    if isinstance(value, list):
        return [_encode(v, tensors, reference, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, tensors, reference, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {
            "$dict": [
                [
                    _encode(k, tensors, reference, depth + 1),
                    _encode(v, tensors, reference, depth + 1),
                ]
                for k, v in value.items()
            ]
        }
    raise Unsendable(f"a {type(value).__module__}.{type(value).__qualname__}")


def decode(data: Any, tensors: dict[str, torch.Tensor], resolve: Resolve | None = None) -> Any:
    """The value ``data`` encodes; references go through ``resolve(kind, name)``."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v, tensors, resolve) for v in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise ValueError(f"not an encoded value: {str(data)[:80]}")
    (key, payload), *_ = data.items()
    if key == "$tensor":
        if payload not in tensors:
            raise ValueError(f"the message refers to a tensor {payload!r} it does not carry")
        return tensors[payload]
    if key == "$float":
        return float(payload)
    if key == "$tuple":
        return tuple(decode(v, tensors, resolve) for v in payload)
    if key == "$dict":
        return {decode(k, tensors, resolve): decode(v, tensors, resolve) for k, v in payload}
    if key == "$size":
        return torch.Size(int(n) for n in payload)
    if key == "$dtype":
        dtype = getattr(torch, str(payload), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {payload!r}")
        return dtype
    if key == "$device":
        return torch.device(str(payload))
    if key == "$slice":
        return slice(*(decode(p, tensors, resolve) for p in payload))
    if key == "$output":
        fields = {k: decode(v, tensors, resolve) for k, v in data["fields"].items()}
        return _model_output(str(payload), fields)
    if resolve is None:
        raise ValueError(f"the message holds a reference {data!r} that cannot be resolved here")
    return resolve(key[1:], str(payload))


def _is_model_output(value: Any) -> bool:
    for cls in type(value).__mro__:
        if cls.__name__ == "ModelOutput" and cls.__module__.startswith("transformers"):
            return True
    return False


def _model_output(name: str, fields: dict[str, Any]) -> Any:
    """The transformers output class of that name (looked up, never imported by path)."""
    from transformers import modeling_outputs
    from transformers.utils import ModelOutput

    cls = getattr(modeling_outputs, name, None)
    if isinstance(cls, type) and issubclass(cls, ModelOutput):
        try:
            return cls(**fields)
        except TypeError:
            pass
    return fields
