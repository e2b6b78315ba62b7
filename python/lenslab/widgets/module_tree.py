"""ModuleTree: browse a model's modules with their class, parameter count and output shape."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import traitlets as t

from ..records import ModuleNode
from ._base import LensWidget, bundle
from ._html import render_tree


def describe(value: Any) -> str | None:
    """A short text for what a module returned: ``(1, 4, 576)``, ``((1, 4, 576), None)``..."""
    if value is None:
        return None
    shape = getattr(value, "shape", None)
    if shape is not None:
        return str(tuple(int(d) for d in shape))
    if isinstance(value, Mapping):  # a transformers ModelOutput is an ordered dict
        items = ", ".join(f"{k}={describe(v)}" for k, v in value.items() if v is not None)
        return f"{type(value).__name__}({items})"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "(" + ", ".join(str(describe(v)) for v in value) + ")"
    return type(value).__name__


def scan_tree(model: Any, prompt: Any = "The quick brown fox") -> ModuleNode:
    """Scan ``model`` on ``prompt`` (fake tensors, nothing computed) and describe every module.

    Names are written as in a trace (``model.model.layers[5].mlp``): list children by index.
    """
    with model.scan(prompt) as tracer:
        cache = tracer.cache()
    shapes = {name: describe(entry.output) for name, entry in cache.items()}

    def build(module: Any, path: str, name: str) -> ModuleNode:
        indexed = type(module).__name__ in ("ModuleList", "Sequential")
        children = tuple(
            build(
                child,
                f"{path}[{key}]" if indexed else f"{path}.{key}",
                f"[{key}]" if indexed else key,
            )
            for key, child in module.named_children()
        )
        count = sum(p.numel() for p in module.parameters())
        return ModuleNode(path, name, type(module).__name__, count, shapes.get(path), children)

    return build(model._module, "model", "model")


class ModuleTree(LensWidget):
    """Expand / collapse the module tree, filter by name, click a module to select it.

    ``selected`` is the chosen path; ``expression`` what to write in a trace to read it.

    Example:
        >>> tree = ModuleTree(model)          # then click model.layers[5].mlp
        >>> tree.expression
        'model.model.layers[5].mlp.output'
    """

    _esm = bundle("module_tree")
    tree = t.Dict().tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    query = t.Unicode("").tag(sync=True)
    scanned = t.Unicode("").tag(sync=True)

    def __init__(self, model: Any, prompt: str = "The quick brown fox", **kwargs: Any) -> None:
        self.root = scan_tree(model, prompt)
        super().__init__(tree=self.root.to_json(), scanned=f"scan of {prompt!r}", **kwargs)

    @property
    def node(self) -> ModuleNode | None:
        """The selected module's record."""
        return self.root.find(self.selected) if self.selected else None

    @property
    def expression(self) -> str:
        return f"{self.selected}.output" if self.selected else ""

    @t.validate("selected")
    def _known_path(self, proposal: Any) -> str:
        path = str(proposal["value"])
        if path and self.root.find(path) is None:
            raise t.TraitError(f"{path!r} is not a module of this model")
        return path

    def to_html(self) -> str:
        chosen = f"<p>selected: <code>{html.escape(self.expression)}</code></p>"
        return render_tree(self.root) + (chosen if self.selected else "")
