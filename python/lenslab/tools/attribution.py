"""Attribution patching: a first-order estimate of activation patching from one backward pass.

For each activation, (clean - corrupted) times the gradient of the metric on the corrupted run
approximates the effect of patching it, for every layer and position at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from ..records.export import dataframe
from ._plots import SCORE_COLUMNS, heatmaps, score_records
from ._summary import best_cells, mimebundle, shape_of
from .patching import _VIEWS, COMPONENTS, PatchingResult, clean_and_corrupted, logit_difference
from .prompts import Tokens


@dataclass(frozen=True)
class AttributionResult:
    """``scores[component]`` is ``(layers, positions)``, normalized like activation patching."""

    scores: dict[str, torch.Tensor]
    clean_metric: float
    corrupted_metric: float
    clean: Tokens
    corrupted: Tokens
    forward_passes: int

    def correlation(self, patching: PatchingResult) -> dict[str, float]:
        """Pearson correlation with an activation-patching sweep of the same grid."""
        if patching.positions == "all":
            raise InputError("compare with a per-position activation patching sweep.")
        result = {}
        for name, scores in self.scores.items():
            if name in patching.scores:
                ours = scores[:, patching.positions].flatten()
                theirs = patching.scores[name].flatten()
                result[name] = float(torch.corrcoef(torch.stack([ours, theirs]))[0, 1])
        return result

    def plot(self, theme: str | None = "auto") -> Any:
        """One heatmap per component, layers x positions (``theme``: auto, light or dark)."""
        columns = [f"{p}: {t!r}" for p, t in enumerate(self.clean.text)]
        return heatmaps(self.scores, columns, "Attribution patching", self.clean, theme)

    def to_numpy(self) -> dict[str, Any]:
        """``{component: (layers, positions) float array}``."""
        return {name: grid.numpy().copy() for name, grid in self.scores.items()}

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per (component, layer, position): the estimated ``score`` and ``token``."""
        text = list(self.clean.text)
        return score_records(self.scores, list(range(len(text))), text)

    def to_dataframe(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas must be installed)."""
        return dataframe(self.to_records(), SCORE_COLUMNS)

    def __repr__(self) -> str:
        """Shape, the two metrics and the highest estimate per component."""
        text = self.clean.text
        return "\n".join(
            [
                f"AttributionResult: {shape_of(self.scores)} ({self.clean.describe()}, "
                f"{self.forward_passes} forward pass)",
                f"  metric: clean {self.clean_metric:.3f}, corrupted {self.corrupted_metric:.3f}"
                " (estimated score 1 = clean restored)",
                *best_cells(self.scores, lambda c: f"position {c} ({text[c]!r})"),
                "  .plot() for the heatmaps; .scores[component] for the values",
            ]
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return mimebundle(repr(self), self.plot, include, exclude)


def attribution_patching(
    model: Any,
    clean: str,
    corrupted: str,
    answer: str | int,
    wrong: str | int,
    *,
    components: Sequence[str] = COMPONENTS,
) -> AttributionResult:
    """Gradient x activation difference over every component, layer and position.

    One forward over both prompts, one backward from the corrupted metric.
    """
    chosen = [c for c in COMPONENTS if c in components]
    clean_tokens, corrupted_tokens = clean_and_corrupted(model, clean, corrupted)
    measure = logit_difference(model, answer, wrong)
    sites = [(c, layer) for layer in range(model.num_layers) for c in chosen]
    both = torch.cat([clean_tokens.ids, corrupted_tokens.ids])  # row 0 clean, row 1 corrupted
    with model.trace(both):
        acts = [getattr(model, _VIEWS[c])[layer] for c, layer in sites]
        values = measure(model.logits)
        grads = torch.autograd.grad(values[1], acts)
    clean_value, corrupted_value = (float(v) for v in values.detach())
    span = clean_value - corrupted_value
    per_site = [
        ((act[0] - act[1]).detach() * grad[1]).sum(-1) / span for act, grad in zip(acts, grads)
    ]
    stacked = torch.stack(per_site).view(model.num_layers, len(chosen), -1)
    return AttributionResult(
        {c: stacked[:, i] for i, c in enumerate(chosen)},
        clean_value,
        corrupted_value,
        clean_tokens,
        corrupted_tokens,
        forward_passes=1,
    )
