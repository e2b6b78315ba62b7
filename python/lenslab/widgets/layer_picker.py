"""LayerPicker: choose layers, a component and token positions against the model's own tokens."""

from __future__ import annotations

import html
from typing import Any

import traitlets as t

from ..records import COMPONENT_VIEWS, Selection
from ._base import LensWidget, bundle
from ._checks import BadValue, prompt_ids, require_model


class LayerPicker(LensWidget):
    """Click layers (shift-click for a range), a component, and the prompt's tokens.

    ``value`` is a Selection: ``value.read(model)`` inside a trace, or its keywords for the
    toolkit (``activation_patching(..., **picker.value.patching_kwargs())``).
    """

    _esm = bundle("layer_picker")
    num_layers = t.Int(0).tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    layers = t.List().tag(sync=True)  # ints, checked by _valid_layers (a LensError)
    component = t.Unicode("resid").tag(sync=True)
    positions = t.List().tag(sync=True)

    def __init__(
        self,
        model: Any,
        prompt: str,
        *,
        layers: list[int] | None = None,
        component: str = "resid",
        positions: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        require_model(model, "LayerPicker")
        ids = prompt_ids(model, prompt, "LayerPicker")[0].tolist()
        tokens = [model.tokenizer.decode(int(i)) for i in ids]
        super().__init__(
            num_layers=int(model.num_layers),
            tokens=tokens,
            layers=[model.num_layers // 2] if layers is None else layers,
            component=component,
            positions=[len(tokens) - 1] if positions is None else positions,
            **kwargs,
        )

    @property
    def value(self) -> Selection:
        return Selection(tuple(self.layers), self.component, tuple(self.positions))

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per chosen (layer, position): ``layer``, ``position``, ``token`` and
        ``component``."""
        return [
            {"layer": layer, "position": position, "token": self.tokens[position],
             "component": self.component}
            for layer in self.layers
            for position in self.positions
        ]  # fmt: skip

    def to_numpy(self) -> Any:
        """A ``(num_layers, tokens)`` 0/1 array: 1 where the selection reads."""
        import numpy as np

        chosen = np.zeros((self.num_layers, len(self.tokens)), dtype=np.int8)
        for layer in self.layers:
            chosen[layer, self.positions] = 1
        return chosen

    def figure(self, theme: str | None = "auto") -> Any:
        """The selection as a layers x tokens plotly heatmap (hover: layer, token, chosen)."""
        import plotly.graph_objects as go

        from ..records.export import themed

        figure = go.Figure(
            go.Heatmap(
                z=self.to_numpy().tolist(),
                x=[f"{i}: {t!r}" for i, t in enumerate(self.tokens)],
                y=[f"layer {i}" for i in range(self.num_layers)],
                colorscale=[[0, "rgba(128,128,128,0.15)"], [1, "#2f6fdf"]],
                showscale=False,
                hovertemplate="%{y}, %{x}: %{z} (1 = chosen)<extra></extra>",
            )
        )
        figure.update_layout(
            title=f"Selection: {self.component} at layers {self.layers}",
            yaxis={"autorange": "reversed"},
        )
        return themed(figure, theme)

    @t.validate("layers")
    def _valid_layers(self, proposal: Any) -> list[int]:
        return _indices(proposal["value"], self.num_layers, "layer")

    @t.validate("positions")
    def _valid_positions(self, proposal: Any) -> list[int]:
        return _indices(proposal["value"], len(self.tokens), "position")

    @t.validate("component")
    def _valid_component(self, proposal: Any) -> str:
        if proposal["value"] not in COMPONENT_VIEWS:
            raise BadValue(
                f"component must be one of {sorted(COMPONENT_VIEWS)} (residual stream, attention, "
                f"MLP output), got {proposal['value']!r}."
            )
        return str(proposal["value"])

    def to_html(self) -> str:
        tokens = "".join(
            f"<span style='padding:1px 3px;margin:1px;border:1px solid #aaa;"
            f"{'background:#cde' if i in self.positions else ''}'>{html.escape(tok)}</span>"
            for i, tok in enumerate(self.tokens)
        )
        return (
            f"<div style='font:12px system-ui'>layers {self.layers}, component "
            f"<b>{self.component}</b>, positions {self.positions}<br>{tokens}</div>"
        )


def _indices(values: list[int], size: int, what: str) -> list[int]:
    """Sorted, unique, non-negative; negative indices count from the end, as in Python."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise BadValue(f"{what}s must be whole numbers, got {list(values)!r}.")
    bad = [v for v in values if not -size <= v < size]
    if bad:
        raise BadValue(
            f"{what}s {bad} out of range: there are {size}, so use {what}s 0 to {size - 1} "
            f"(or -1 for the last)."
        )
    return sorted({v + size if v < 0 else v for v in values})
