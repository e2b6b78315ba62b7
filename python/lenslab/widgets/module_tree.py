"""ModuleTree: browse a model's modules with their class, parameter count and output shape."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import traitlets as t

from ..errors import InputError
from ..records import ModuleNode
from ._base import LensWidget, bundle
from ._checks import BadValue, require_model
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


DEFAULT_PROMPT = "The quick brown fox"


def scan_tree(model: Any, prompt: Any = None) -> ModuleNode:
    """Scan ``model`` on ``prompt`` (fake tensors, nothing computed) and describe every module.

    ``prompt`` is text for a language model (default "The quick brown fox"), else an example
    input of the wrapped module. Names are written as in a trace (``model.model.layers[5].mlp``):
    list children by index.
    """
    require_model(model, "ModuleTree", text=False)
    text = getattr(model, "tokenizer", None) is not None
    if prompt is None and text:
        prompt = DEFAULT_PROMPT
    if (prompt is None or isinstance(prompt, str)) and not text:
        raise InputError(
            f"ModuleTree scans the model on an example input; this {type(model._module).__name__}"
            f" has no tokenizer, so it takes tensors, not text: pass one, e.g. "
            f"ModuleTree(model, {_example(model._module)})."
        )
    if isinstance(prompt, str) and not prompt:
        raise InputError(f"ModuleTree got an empty prompt: pass text, e.g. {DEFAULT_PROMPT!r}.")
    try:
        with model.scan(prompt) as tracer:
            cache = tracer.cache()
    except Exception as problem:
        raise InputError(
            f"ModuleTree could not scan the model on {_short(prompt)}: {problem}. Pass an input "
            f"its forward accepts."
        ) from problem
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


def _example(module: Any) -> str:
    """A guess at an input for a bare module: zeros as wide as its first Linear's input."""
    first = next((m for m in module.modules() if hasattr(m, "in_features")), None)
    return f"torch.zeros(1, {first.in_features})" if first is not None else "an example tensor"


def _short(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"an input of shape {tuple(shape)}" if shape is not None else repr(value)[:60]


class ModuleTree(LensWidget):
    """Expand / collapse the module tree, filter by name, click a module to select it.

    ``selected`` is the chosen path; ``expression`` what to write in a trace to read it.

    Examples:
        >>> tree = ModuleTree(model)
        >>> tree.selected = "model.model.layers[5].mlp"    # what clicking it sets
        >>> tree.expression
        'model.model.layers[5].mlp.output'
    """

    _esm = bundle("module_tree")
    tree = t.Dict().tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    query = t.Unicode("").tag(sync=True)
    scanned = t.Unicode("").tag(sync=True)

    def __init__(self, model: Any, prompt: Any = None, **kwargs: Any) -> None:
        self.root = scan_tree(model, prompt)
        shown = DEFAULT_PROMPT if prompt is None else prompt
        super().__init__(tree=self.root.to_json(), scanned=f"scan of {_short(shown)}", **kwargs)

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
            raise BadValue(
                f"{path!r} is not a module of this model: write it as the tree shows it, "
                f"e.g. {next(iter(c.path for c in self.root.children), 'model')!r}."
            )
        return path

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per module: ``path``, ``parent``, ``kind``, ``parameters`` (its own and its
        children's) and ``output`` (the scanned output shape, or None)."""
        rows = []

        def visit(node: Any, parent: str) -> None:
            rows.append(
                {"path": node.path, "parent": parent, "kind": node.kind,
                 "parameters": node.parameters, "output": node.output}
            )  # fmt: skip
            for child in node.children:
                visit(child, node.path)

        visit(self.root, "")
        return rows

    def figure(self, theme: str | None = "auto") -> Any:
        """A plotly treemap of the modules, sized by parameter count (hover: class, shape)."""
        import plotly.graph_objects as go

        from ..records.export import themed

        rows = self.to_records()
        figure = go.Figure(
            go.Treemap(
                ids=[r["path"] for r in rows],
                labels=[r["path"].rsplit(".", 1)[-1] for r in rows],
                parents=[r["parent"] for r in rows],
                values=[r["parameters"] for r in rows],
                branchvalues="total",
                customdata=[[r["path"], r["kind"], r["output"] or "not scanned"] for r in rows],
                hovertemplate="%{customdata[0]} (%{customdata[1]}): %{value:,} parameters, "
                "output %{customdata[2]}<extra></extra>",
                maxdepth=3,
            )
        )
        figure.update_layout(title=f"Modules of {self.root.kind}", height=480)
        return themed(figure, theme)

    def to_html(self) -> str:
        chosen = f"<p>selected: <code>{html.escape(self.expression)}</code></p>"
        return render_tree(self.root) + (chosen if self.selected else "")
