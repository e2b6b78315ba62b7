"""One set of names for every supported causal LM: layers, attention, MLP, embeddings, head.

GPT-2 calls its blocks ``transformer.h`` and Llama ``model.layers``; under transformers 5 a
block returns a tensor while attention returns a tuple. The standardized view hides both: on
any ``LanguageModel``, ``model.layers_output[i]`` is always the hidden-state tensor
``(batch, seq, d_model)``, readable and assignable inside a trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from ..errors import LensError

if TYPE_CHECKING:
    from ..engine.envoy import Envoy

# Where each standardized name lives, per known layout (first match wins).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "layers": ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"),
    "attention": ("self_attn", "attn", "attention"),  # inside a layer
    "mlp": ("mlp", "feed_forward"),  # inside a layer
    "token_embeddings": ("model.embed_tokens", "transformer.wte", "gpt_neox.embed_in"),
    "ln_final": ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm"),
    "lm_head": ("lm_head", "embed_out"),
}


class LayoutError(LensError):
    """The model's modules could not be matched to the standardized names."""


@dataclass(frozen=True)
class Layout:
    """Module paths (dotted, as in ``named_modules``) behind the standardized names."""

    layers: str
    attention: str
    mlp: str
    token_embeddings: str
    ln_final: str
    lm_head: str


def find_layout(model: nn.Module, rename: Mapping[str, str] | None = None) -> Layout:
    """Match ``model``'s modules to the standardized names; ``rename`` overrides any of them.

    Raises:
        LayoutError: listing every name that could not be mapped and what was tried.
    """
    names = dict(model.named_modules())
    found: dict[str, str] = {}
    missing: list[str] = []
    for key, candidates in CANDIDATES.items():
        tried = (rename[key],) if rename and key in rename else candidates
        if key in ("attention", "mlp"):
            layers = found.get("layers")
            match = next((c for c in tried if layers and f"{layers}.0.{c}" in names), None)
        else:
            match = next((c for c in tried if c in names), None)
        if match is None:
            missing.append(f"{key} (tried {', '.join(tried)})")
        else:
            found[key] = match
    unknown = set(rename or {}) - set(CANDIDATES)
    if unknown:
        raise LayoutError(
            f"rename got unknown names {sorted(unknown)}; the standardized names are "
            f"{sorted(CANDIDATES)}."
        )
    if missing:
        top = ", ".join(name for name in model._modules)
        raise LayoutError(
            f"{type(model).__name__} does not fit the standardized view: could not map "
            f"{'; '.join(missing)}. Its top-level modules are {top}. Pass "
            "LanguageModel(..., rename={'layers': 'path.to.blocks', ...}) to map them."
        )
    if not isinstance(names[found["layers"]], nn.ModuleList):
        raise LayoutError(f"{found['layers']} is not a list of layers (a ModuleList).")
    return Layout(**found)


class Indexed:
    """``model.layers_output[i]`` and friends: a per-layer value, read and set by index."""

    def __init__(self, model: Any, part: str | None, kind: str, item: int | None) -> None:
        self._model = model
        self._part = part  # None: the layer itself; else a child of it ("attention"/"mlp")
        self._kind = kind  # "output" or "input"
        self._item = item  # tuple item holding the hidden state, when the value is a tuple

    def _envoy(self, index: int) -> Envoy:
        layer = self._model.layers[index]
        if self._part is None:
            return layer
        return layer._child(getattr(self._model._layout, self._part))

    def __getitem__(self, index: int) -> Any:
        value = getattr(self._envoy(index), self._kind)
        if isinstance(value, tuple) and self._item is not None:
            return value[self._item]
        return value

    def __setitem__(self, index: int, new: Any) -> None:
        envoy = self._envoy(index)
        value = getattr(envoy, self._kind)
        if isinstance(value, tuple) and self._item is not None:
            items = list(value)
            items[self._item] = new
            new = tuple(items)
        setattr(envoy, self._kind, new)

    def __len__(self) -> int:
        return len(self._model.layers)


def check_shapes(model: Any) -> None:
    """Confirm on fake tensors (no compute, parameters untouched) that each standardized value
    has the shape the view promises; raise LayoutError naming the ones that do not."""
    hidden = model.hidden_size
    with model.scan(input_ids=[[0, 0]]):
        got = {
            "token_embeddings": model.token_embeddings.output.shape,
            "layers_output[0]": model.layers_output[0].shape,
            "attentions_output[0]": model.attentions_output[0].shape,
            "mlps_output[0]": model.mlps_output[0].shape,
            "layers_output[-1]": model.layers_output[-1].shape,
            "ln_final": model.ln_final.output.shape,
        }
    wrong = {name: list(shape) for name, shape in got.items() if tuple(shape) != (1, 2, hidden)}
    if wrong:
        raise LayoutError(
            f"{type(model._module).__name__}: the standardized view expects (batch, seq, "
            f"{hidden}) everywhere, but a scan found {wrong}; fix the mapping with rename=..."
        )
