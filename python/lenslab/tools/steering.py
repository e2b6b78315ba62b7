"""Steering: add a direction to the residual stream and watch predictions or generations move."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..records.export import dataframe
from ._summary import mimebundle, short, themed
from .prompts import Tokens, token_id, tokens_of


def steering_vector(
    model: Any,
    positive: Sequence[str],
    negative: Sequence[str],
    layer: int,
    *,
    position: int = -1,
) -> torch.Tensor:
    """Mean layer-``layer`` activation of ``positive`` minus that of ``negative`` (one forward).

    ``position`` picks the token (default the last; prompts are left-padded, so -1 is always
    a real token).
    """
    with torch.no_grad(), model.trace() as tracer:
        with tracer.invoke(list(positive)):
            plus = model.layers_output[layer][:, position].mean(0).save()
        with tracer.invoke(list(negative)):
            minus = model.layers_output[layer][:, position].mean(0).save()
    return plus - minus


@dataclass(frozen=True)
class SteeringResult:
    """Baseline and steered runs of one prompt, from one batched forward (or generation).

    ``baseline`` / ``steered`` are last-position log-probabilities ``(vocab,)``; with
    ``max_new_tokens`` also ``texts`` = (baseline text, steered text).
    """

    baseline: torch.Tensor
    steered: torch.Tensor
    coefficient: float
    layers: list[int]
    tokens: Tokens
    texts: tuple[str, str] | None = None

    def __repr__(self) -> str:
        """The setting, how far the next-token distribution moved, and the texts."""
        shift = float((self.steered.exp() * (self.steered - self.baseline)).sum())
        before, after = int(self.baseline.argmax()), int(self.steered.argmax())
        top = "unchanged" if before == after else f"changes from id {before} to id {after}"
        lines = [
            f"SteeringResult: coefficient {self.coefficient:g} at layers {self.layers} "
            f"({self.tokens.describe()})",
            f"  next token: KL(steered || baseline) {shift:.3f} nats; top-1 {top}"
            " (.plot(model) names the tokens)",
        ]
        if self.texts is not None:
            lines += [f"  baseline: {short(self.texts[0])}", f"  steered:  {short(self.texts[1])}"]
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return mimebundle(repr(self), None, include, exclude)

    def log_prob(self, model: Any, token: str | int) -> tuple[float, float]:
        """(baseline, steered) log-probability of ``token`` as the next token."""
        index = token_id(model, token)
        return float(self.baseline[index]), float(self.steered[index])

    def to_numpy(self) -> dict[str, Any]:
        """``{"baseline": (vocab,), "steered": (vocab,)}`` next-token log-probabilities."""
        return {"baseline": self.baseline.numpy().copy(), "steered": self.steered.numpy().copy()}

    def to_records(self, model: Any, top_k: int = 10) -> list[dict[str, Any]]:
        """One dict per token among the top ``top_k`` of either run: ``token``, ``token_id``,
        ``baseline`` and ``steered`` log-probabilities and their ``shift``."""
        ids = self._top_ids(top_k)
        return [
            {"token": model.tokenizer.decode(i), "token_id": i,
             "baseline": float(self.baseline[i]), "steered": float(self.steered[i]),
             "shift": float(self.steered[i] - self.baseline[i])}
            for i in ids
        ]  # fmt: skip

    def to_dataframe(self, model: Any, top_k: int = 10) -> Any:
        """``to_records(model, top_k)`` as a pandas DataFrame (pandas must be installed)."""
        columns = ["token", "token_id", "baseline", "steered", "shift"]
        return dataframe(self.to_records(model, top_k), columns)

    def _top_ids(self, top_k: int) -> list[int]:
        top = torch.cat([self.baseline.topk(top_k).indices, self.steered.topk(top_k).indices])
        return list(dict.fromkeys(top.tolist()))

    def plot(self, model: Any, top_k: int = 10, theme: str | None = "auto") -> Any:
        """Next-token probabilities, baseline vs steered, for the top tokens of either
        (``theme``: auto, light or dark)."""
        import plotly.graph_objects as go

        ids = self._top_ids(top_k)
        labels = [repr(model.tokenizer.decode(i)) for i in ids]
        figure = go.Figure(
            [
                go.Bar(
                    name=name,
                    x=labels,
                    y=run[ids].exp().tolist(),
                    hovertemplate=f"{name}, next token %{{x}}: p %{{y:.4f}}<extra></extra>",
                )
                for name, run in (
                    ("baseline", self.baseline),
                    (f"steered (x{self.coefficient:g})", self.steered),
                )
            ]
        )
        figure.update_layout(
            barmode="group",
            yaxis_title="next-token probability",
            title=f"Steering at layers {self.layers}",
        )
        return themed(figure, theme)


def steer(
    model: Any,
    prompt: str,
    vector: torch.Tensor,
    layers: int | Sequence[int],
    *,
    coefficient: float = 1.0,
    positions: slice | Sequence[int] | int | None = None,
    max_new_tokens: int | None = None,
    **generation: Any,
) -> SteeringResult:
    """Add ``coefficient * vector`` to the residual stream at ``layers`` (and ``positions``).

    Baseline and steered share one forward pass (two invokes); with ``max_new_tokens`` they
    share one generation, the vector added at every step.
    """
    chosen = [layers] if isinstance(layers, int) else list(layers)
    where = slice(None) if positions is None else positions
    shift = coefficient * vector
    tokens = tokens_of(model, prompt)
    if max_new_tokens is None:
        with torch.no_grad(), model.trace() as tracer:
            with tracer.invoke(tokens.ids):
                baseline = model.logits[0, -1].log_softmax(-1).save()
            with tracer.invoke(tokens.ids):
                for layer in chosen:
                    model.layers_output[layer][:, where] += shift
                steered = model.logits[0, -1].log_softmax(-1).save()
        return SteeringResult(baseline, steered, coefficient, chosen, tokens)
    options = {"do_sample": False, **generation}
    with torch.no_grad(), model.generate(max_new_tokens=max_new_tokens, **options) as tracer:
        with tracer.invoke(tokens.ids):
            baseline = model.logits[0, -1].log_softmax(-1).save()
        with tracer.invoke(tokens.ids):
            for _ in tracer.all():
                for layer in chosen:
                    model.layers_output[layer][:, where] += shift
            steered = model.logits[0, -1].log_softmax(-1).save()
    texts = model.tokenizer.batch_decode(tracer.result, skip_special_tokens=True)
    return SteeringResult(baseline, steered, coefficient, chosen, tokens, (texts[0], texts[1]))
