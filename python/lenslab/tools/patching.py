"""Activation patching: which activations carry the difference between two prompts.

Run a clean and a corrupted prompt (same token count); then, for each component, layer and
position, copy the clean activation into the corrupted run and measure how much of the clean
behaviour comes back. Many patches share one forward pass: each row of a batch holds one patch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from ..records.export import dataframe
from ._plots import SCORE_COLUMNS, heatmaps, score_records
from ._summary import best_cells, mimebundle, shape_of
from .prompts import Tokens, token_id, tokens_of

COMPONENTS = ("attn", "mlp", "resid")  # forward order inside a layer
_VIEWS = {"attn": "attentions_output", "mlp": "mlps_output", "resid": "layers_output"}


@dataclass(frozen=True)
class PatchingResult:
    """``scores[component]`` is ``(layers, positions)``: 1 = clean behaviour fully restored.

    ``positions`` lists the patched positions (``"all"``: every position at once).
    """

    scores: dict[str, torch.Tensor]
    positions: list[int] | str
    clean_metric: float
    corrupted_metric: float
    clean: Tokens
    corrupted: Tokens
    forward_passes: int

    def plot(self, theme: str | None = "auto") -> Any:
        """One heatmap per component, layers x positions (``theme``: auto, light or dark)."""
        return heatmaps(self.scores, self._columns(), "Activation patching", self.clean, theme)

    def to_numpy(self) -> dict[str, Any]:
        """``{component: (layers, positions) float array}``."""
        return {name: grid.numpy().copy() for name, grid in self.scores.items()}

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per (component, layer, position) patched: ``score`` and ``token``
        (position -1 with token "all positions" for a ``positions="all"`` sweep)."""
        if self.positions == "all":
            return score_records(self.scores, [-1], ["all positions"])
        return score_records(
            self.scores, list(self.positions), [self.clean.text[p] for p in self.positions]
        )

    def to_dataframe(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas must be installed)."""
        return dataframe(self.to_records(), SCORE_COLUMNS)

    def __repr__(self) -> str:
        """Shape, the two metrics and the best patch per component."""

        def label(column: int) -> str:
            if self.positions == "all":
                return "all positions"
            position = self.positions[column]
            return f"position {position} ({self.clean.text[position]!r})"

        return "\n".join(
            [
                f"PatchingResult: {shape_of(self.scores)} ({self.clean.describe()}, "
                f"{self.forward_passes} forward passes)",
                f"  metric: clean {self.clean_metric:.3f}, corrupted {self.corrupted_metric:.3f}"
                " (score 1 = clean restored, 0 = no effect)",
                *best_cells(self.scores, label),
                "  .plot() for the heatmaps; .scores[component] for the values",
            ]
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return mimebundle(repr(self), self.plot, include, exclude)

    def _columns(self) -> list[str]:
        if self.positions == "all":
            return ["all positions"]
        return [f"{p}: {self.clean.text[p]!r}" for p in self.positions]


def clean_and_corrupted(model: Any, clean: str, corrupted: str) -> tuple[Tokens, Tokens]:
    a, b = tokens_of(model, clean), tokens_of(model, corrupted)
    if a.count != b.count:
        raise InputError(
            f"clean and corrupted prompts must have the same number of tokens, got {a.count} "
            f"and {b.count}: {a.text} vs {b.text}."
        )
    return a, b


def logit_difference(model: Any, answer: str | int, wrong: str | int) -> Callable[..., Any]:
    right_id, wrong_id = token_id(model, answer), token_id(model, wrong)
    return lambda logits: logits[:, -1, right_id] - logits[:, -1, wrong_id]


def activation_patching(
    model: Any,
    clean: str,
    corrupted: str,
    answer: str | int,
    wrong: str | int,
    *,
    components: Sequence[str] = COMPONENTS,
    positions: Sequence[int] | str | None = None,
    metric: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    progress: bool = True,
    on_batch: Callable[[list[tuple[str, int, Any]], torch.Tensor], None] | None = None,
) -> PatchingResult:
    """Patch clean activations into the corrupted run, one (component, layer, position) a row.

    Args:
        answer: the clean prompt's answer (``" Mary"``).
        wrong: the corrupted prompt's answer; the default metric is the logit difference of
            ``answer`` and ``wrong`` at the last position, normalized so corrupted = 0 and
            clean = 1.
        positions: positions to patch one by one (default all); ``"all"`` patches every
            position at once.
        metric: ``logits (batch, seq, vocab) -> (batch,)``, normalized the same way.
        batch_size: patches per forward pass.
        on_batch: called after each forward with its ``(component, layer, position)`` jobs and
            their normalized scores, so a caller can show a sweep filling in as it runs.
    """
    chosen = [c for c in COMPONENTS if c in components]
    if len(chosen) != len(set(components)):
        raise InputError(f"components must be among {COMPONENTS}, got {list(components)}.")
    clean_tokens, corrupted_tokens = clean_and_corrupted(model, clean, corrupted)
    measure = metric or logit_difference(model, answer, wrong)
    columns: list[Any] = (
        ["all"]
        if positions == "all"
        else list(range(clean_tokens.count) if positions is None else positions)
    )
    layers = range(model.num_layers)
    activations, clean_value, corrupted_value = _clean_run(
        model, clean_tokens, corrupted_tokens, chosen, measure
    )
    jobs = [(c, layer, p) for c in chosen for layer in layers for p in range(len(columns))]
    raw = torch.empty(len(jobs))
    batches = range(0, len(jobs), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="activation patching", unit="batch")
    for start in batches:
        chunk = jobs[start : start + batch_size]
        raw[start : start + len(chunk)] = _patched_run(
            model, corrupted_tokens.ids, chunk, columns, activations, measure
        )
        if on_batch is not None:
            done = [(c, layer, columns[column]) for c, layer, column in chunk]
            chunk_raw = raw[start : start + len(chunk)]
            on_batch(done, (chunk_raw - corrupted_value) / (clean_value - corrupted_value))
    span = clean_value - corrupted_value
    scores = (raw - corrupted_value) / span
    shaped = scores.view(len(chosen), len(layers), len(columns))
    return PatchingResult(
        {c: shaped[i] for i, c in enumerate(chosen)},
        "all" if positions == "all" else columns,
        clean_value,
        corrupted_value,
        clean_tokens,
        corrupted_tokens,
        forward_passes=1 + len(range(0, len(jobs), batch_size)),
    )


def _clean_run(
    model: Any, clean: Tokens, corrupted: Tokens, chosen: list[str], measure: Callable[..., Any]
) -> tuple[dict[tuple[str, int], torch.Tensor], float, float]:
    """Clean activations of every layer, and both metrics, from one two-row forward."""
    saved: dict[tuple[str, int], torch.Tensor] = {}
    with torch.no_grad(), model.trace() as tracer:
        with tracer.invoke(clean.ids):
            for layer in range(model.num_layers):
                for component in chosen:
                    view = getattr(model, _VIEWS[component])
                    saved[(component, layer)] = view[layer][0].clone()
            clean_logits = model.logits.save()
        with tracer.invoke(corrupted.ids):
            corrupted_logits = model.logits.save()
    return saved, float(measure(clean_logits)[0]), float(measure(corrupted_logits)[0])


def _patched_run(
    model: Any,
    ids: torch.Tensor,
    chunk: list[tuple[str, int, int]],
    columns: list[Any],
    activations: dict[tuple[str, int], torch.Tensor],
    measure: Callable[..., Any],
) -> torch.Tensor:
    """One forward over ``len(chunk)`` copies of the corrupted prompt, row i patched by job i."""
    by_site: dict[tuple[int, str], list[tuple[int, Any]]] = {}
    for row, (component, layer, column) in enumerate(chunk):
        by_site.setdefault((layer, component), []).append((row, columns[column]))
    order = sorted(by_site, key=lambda site: (site[0], COMPONENTS.index(site[1])))
    with torch.no_grad(), model.trace(ids.expand(len(chunk), -1)):
        for layer, component in order:  # forward order: layer by layer, attn < mlp < resid
            value = getattr(model, _VIEWS[component])[layer]
            clean = activations[(component, layer)]
            for row, position in by_site[(layer, component)]:
                if position == "all":
                    value[row] = clean
                else:
                    value[row, position] = clean[position]
        scores = measure(model.logits).save()
    return scores
