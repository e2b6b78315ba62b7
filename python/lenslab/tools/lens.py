"""Logit lens: what each layer's residual stream would predict if the model stopped there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..records.export import dataframe
from ._summary import mimebundle, themed, top_list
from .prompts import Tokens, tokens_of


@dataclass(frozen=True)
class LogitLens:
    """Top-k next-token predictions per layer and position.

    ``probs`` and ``token_ids`` are ``(layers, seq, k)``; ``top_tokens[l][p]`` the decoded
    top-k; ``layers`` the layer indices; ``tokens`` the prompt as the model saw it.
    """

    probs: torch.Tensor
    token_ids: torch.Tensor
    top_tokens: list[list[list[str]]]
    layers: list[int]
    tokens: Tokens

    def __repr__(self) -> str:
        """Shape, the last layer's top tokens at the last position, and where its top-1 first
        leads (printing the tensors would say nothing at a glance)."""
        layers, positions, k = self.probs.shape
        last = self.top_tokens[-1][-1]
        answer = last[0]
        first = next(
            layer for layer, row in zip(self.layers, self.top_tokens) if row[-1][0] == answer
        )
        return "\n".join(
            [
                f"LogitLens: {layers} layers x {positions} positions, top-{k} "
                f"({self.tokens.describe()})",
                f"  layer {self.layers[-1]}, last position ({self.tokens.text[-1]!r}): "
                + top_list(zip(last, self.probs[-1, -1].tolist())),
                f"  {answer!r} is first top-1 there at layer {first}",
                "  .plot() for the heatmap; .probs, .top_tokens for the values",
            ]
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return mimebundle(repr(self), self.plot, include, exclude)

    def to_numpy(self) -> dict[str, Any]:
        """``{"probs": (layers, positions, k), "token_ids": (layers, positions, k)}``."""
        return {"probs": self.probs.numpy().copy(), "token_ids": self.token_ids.numpy().copy()}

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per (layer, position, rank): the input ``token`` there, the predicted
        ``top_token``, its ``token_id`` and ``prob``."""
        return [
            {"layer": layer, "position": position, "token": self.tokens.text[position],
             "rank": rank, "top_token": word, "token_id": int(self.token_ids[i, position, rank]),
             "prob": float(self.probs[i, position, rank])}
            for i, layer in enumerate(self.layers)
            for position, cell in enumerate(self.top_tokens[i])
            for rank, word in enumerate(cell)
        ]  # fmt: skip

    def to_dataframe(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas must be installed)."""
        columns = ["layer", "position", "token", "rank", "top_token", "token_id", "prob"]
        return dataframe(self.to_records(), columns)

    def plot(self, theme: str | None = "auto") -> Any:
        """Heatmap of the top-1 probability (layers x positions), top-k on hover (``theme``:
        auto, light or dark)."""
        import plotly.graph_objects as go

        hover = [
            [
                "<br>".join(f"{t!r}: {p:.3f}" for t, p in zip(cell, probs))
                for cell, probs in zip(row, row_probs.tolist())
            ]
            for row, row_probs in zip(self.top_tokens, self.probs)
        ]
        figure = go.Figure(
            go.Heatmap(
                z=self.probs[:, :, 0].tolist(),
                x=[f"{i}: {t!r}" for i, t in enumerate(self.tokens.text)],
                y=[f"layer {layer}" for layer in self.layers],
                text=[[cell[0] for cell in row] for row in self.top_tokens],
                texttemplate="%{text}",
                customdata=hover,
                hovertemplate="%{y}, %{x}: top-1 p %{z:.3f}<br>%{customdata}<extra></extra>",
                colorscale="Blues",
                zmin=0,
                zmax=1,
                colorbar={"title": "top-1 p"},
            )
        )
        figure.update_layout(
            title=f"Logit lens ({self.tokens.describe()})",
            xaxis_title="position",
            yaxis_title="layer",
        )
        return themed(figure, theme)


def logit_lens(
    model: Any, prompt: str, *, top_k: int = 5, layers: Sequence[int] | None = None
) -> LogitLens:
    """Decode every layer's output through the final norm and unembedding, in one forward.

    Examples:
        >>> lens = logit_lens(model, "The Eiffel Tower is located in the city of")
        >>> lens.top_tokens[-1][-1][0]
        ' Paris'
    """
    tokens = tokens_of(model, prompt)
    chosen = list(range(model.num_layers)) if layers is None else list(layers)
    probs, ids = [], []
    with torch.no_grad(), model.trace(tokens.ids):
        for layer in chosen:
            hidden = model.layers_output[layer]
            top = model.lm_head(model.ln_final(hidden[0])).softmax(-1).topk(top_k, dim=-1)
            probs.append(top.values)
            ids.append(top.indices)
    token_ids = torch.stack(ids)
    decode = model.tokenizer.decode
    top_tokens = [[[decode(int(i)) for i in cell] for cell in row] for row in token_ids]
    return LogitLens(torch.stack(probs), token_ids, top_tokens, chosen, tokens)
