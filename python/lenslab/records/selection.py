"""Which layers, component and token positions a LayerPicker chose, ready for traces and tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The standardized view (models/standard.py) behind each component name the toolkit uses.
COMPONENT_VIEWS = {"resid": "layers_output", "attn": "attentions_output", "mlp": "mlps_output"}


@dataclass(frozen=True)
class Selection:
    """``layers`` and ``positions`` are sorted indices; ``component`` is resid, attn or mlp.

    Examples:
        >>> with model.trace(prompt):
        ...     chosen = picker.value.read(model)      # {layer: (batch, len(positions), d)}
        >>> steered = steer(model, prompt, vector, **picker.value.steer_kwargs())
    """

    layers: tuple[int, ...]
    component: str
    positions: tuple[int, ...]

    @property
    def view(self) -> str:
        """The standardized name: ``layers_output``, ``attentions_output`` or ``mlps_output``."""
        return COMPONENT_VIEWS[self.component]

    def read(self, model: Any) -> dict[int, Any]:
        """Inside a trace: each chosen layer's value at the chosen positions."""
        values = getattr(model, self.view)
        return {layer: values[layer][:, list(self.positions)] for layer in self.layers}

    def patching_kwargs(self) -> dict[str, Any]:
        """Keywords for ``activation_patching``: this component, these positions."""
        return {"components": [self.component], "positions": list(self.positions)}

    def steer_kwargs(self) -> dict[str, Any]:
        """Keywords for ``steer``: these layers and positions (the residual stream)."""
        return {"layers": list(self.layers), "positions": list(self.positions)}

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "component": self.component,
            "positions": list(self.positions),
        }
