"""Live plots: attach a Heatmap or StepPlot to a trace, a generation or a sweep.

Each helper shows its widget first, then runs the model and fills the plot as values arrive:
the trace body runs while the forward pass is paused at each layer, so row i appears as soon as
layer i has run.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import InputError
from ._checks import at_least_one, component_of, prompt_ids, require_model
from .heatmap import Heatmap


def show(widget: Any) -> None:
    """Display ``widget`` now when running under IPython (so it can update while we compute)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        return
    if get_ipython() is not None:
        display(widget)


@contextmanager
def closed_on_error(widget: Any) -> Iterator[None]:
    """Close ``widget`` (its view disappears) if the body fails: no half-empty plot stays."""
    try:
        yield
    except BaseException:
        widget.close()
        raise


def token_labels(model: Any, ids: Sequence[int]) -> list[str]:
    return [f"{i}: {model.tokenizer.decode(int(t))!r}" for i, t in enumerate(ids)]


def activation_norms(
    model: Any, prompt: str, *, component: str = "resid", display: bool = True
) -> Heatmap:
    """Per-layer x token L2 norms of ``component`` (resid / attn / mlp), filled layer by layer."""
    import torch

    from ..records import COMPONENT_VIEWS

    require_model(model, "activation_norms")
    component_of(component, COMPONENT_VIEWS, "activation_norms")
    ids = prompt_ids(model, prompt, "activation_norms")
    plot = Heatmap(
        rows=[f"layer {i}" for i in range(model.num_layers)],
        cols=token_labels(model, ids[0].tolist()),
        title=f"{component} norm per layer and token",
        # The first token's norm is often tens of times the rest (an attention sink): a log
        # scale keeps the other positions' structure visible instead of one dark column.
        scale="log",
        legend="L2 norm",
    )
    if display:
        show(plot)
    with closed_on_error(plot), torch.no_grad(), model.trace(ids):
        view = getattr(model, COMPONENT_VIEWS[component])
        for layer in range(model.num_layers):
            plot.set_row(layer, view[layer][0].norm(dim=-1))
    return plot


def live_logit_lens(model: Any, prompt: str, *, top_k: int = 5, display: bool = True) -> Heatmap:
    """The logit lens as it computes: row i (top-1 probability, top-k on hover) after layer i."""
    import torch

    require_model(model, "live_logit_lens")
    at_least_one(top_k, "top_k", "live_logit_lens")
    ids = prompt_ids(model, prompt, "live_logit_lens")
    plot = Heatmap(
        rows=[f"layer {i}" for i in range(model.num_layers)],
        cols=token_labels(model, ids[0].tolist()),
        title="Logit lens: top-1 probability (top-k on hover)",
        zmin=0.0,
        zmax=1.0,
        legend="top-1 probability",
    )
    if display:
        show(plot)
    decode = model.tokenizer.decode
    with closed_on_error(plot), torch.no_grad(), model.trace(ids):
        for layer in range(model.num_layers):
            hidden = model.layers_output[layer][0]
            top = model.lm_head(model.ln_final(hidden)).softmax(-1).topk(top_k, dim=-1)
            probs, indices = top.values.tolist(), top.indices.tolist()
            words = [[decode(i) for i in cell] for cell in indices]
            plot.set_row(
                layer,
                top.values[:, 0],
                text=[cell[0] for cell in words],
                hover=[_top_k_text(w, p) for w, p in zip(words, probs)],
            )
    return plot


def lens_heatmap(lens: Any) -> Heatmap:
    """A Heatmap of a ``logit_lens(...)`` result (top-1 probability, top-k on hover)."""
    plot = Heatmap(
        rows=[f"layer {i}" for i in lens.layers],
        cols=[f"{i}: {t!r}" for i, t in enumerate(lens.tokens.text)],
        title=f"Logit lens ({lens.tokens.describe()})",
        zmin=0.0,
        zmax=1.0,
        legend="top-1 probability",
        text=[[cell[0] for cell in row] for row in lens.top_tokens],
        hover=[
            [_top_k_text(cell, probs) for cell, probs in zip(row, row_probs.tolist())]
            for row, row_probs in zip(lens.top_tokens, lens.probs)
        ],
    )
    plot.set_all(lens.probs[:, :, 0])
    return plot


def _top_k_text(tokens: Sequence[str], probs: Sequence[float]) -> str:
    return "\n".join(f"{t!r}: {p:.3f}" for t, p in zip(tokens, probs))


class StepPlot:
    """Per-step values during a generation (one line per series), on a plotly FigureWidget.

    ``append`` extends each line in place: plotly sends only the changed trace, the figure is
    not re-rendered.

    Examples:
        >>> plot = StepPlot(["top-1 p"])
        >>> with model.generate(prompt, max_new_tokens=10) as tracer:
        ...     for step in tracer.all():
        ...         plot.append(step, **{"top-1 p": model.next_token_probs.max()})
    """

    def __init__(self, series: Sequence[str], *, title: str = "", y_title: str = "") -> None:
        import plotly.graph_objects as go

        self.figure = go.FigureWidget(
            [go.Scatter(x=[], y=[], name=name, mode="lines+markers") for name in series],
            layout={
                "title": title,
                "xaxis": {"title": {"text": "step"}, "dtick": 1},
                "yaxis_title": y_title,
                "height": 320,
            },
        )
        from ..tools._summary import NEUTRAL_LAYOUT

        self.figure.update_layout(**NEUTRAL_LAYOUT)  # readable on light and dark themes
        self.series = list(series)

    def append(self, step: int, **values: Any) -> None:
        """Add one point per named series at ``step``."""
        unknown = sorted(set(values) - set(self.series))
        if unknown:
            raise InputError(
                f"StepPlot has no series {unknown}; its series are {self.series} (name them "
                f"when you create it: StepPlot([...]))."
            )
        with self.figure.batch_update():
            for trace in self.figure.data:
                if trace.name in values:
                    trace.x = (*trace.x, step)
                    trace.y = (*trace.y, float(values[trace.name]))

    def values(self, name: str) -> list[float]:
        trace = self.figure.data[self.series.index(name)]
        return list(trace.y)

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><th>{html.escape(str(trace.name))}</th>"
            + "".join(f"<td>{y:.3g}</td>" for y in trace.y)
            + "</tr>"
            for trace in self.figure.data
        )
        return f"<table style='font:12px system-ui'>{rows}</table>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = dict(self.figure._repr_mimebundle_(**kwargs))
        data["text/html"] = self.to_html()
        return data


def generation_plot(
    model: Any, prompt: str, *, max_new_tokens: int = 12, display: bool = True
) -> tuple[StepPlot, str]:
    """Generate greedily, plotting the chosen token's probability and entropy at each step."""
    import torch

    require_model(model, "generation_plot")
    at_least_one(max_new_tokens, "max_new_tokens", "generation_plot")
    prompt_ids(model, prompt, "generation_plot")
    plot = StepPlot(["top-1 probability", "entropy (nats)"], title=f"Generating from {prompt!r}")
    if display:
        show(plot)
    with (
        closed_on_error(plot.figure),
        torch.no_grad(),
        model.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False) as tracer,
    ):
        for step in tracer.all():
            probs = model.next_token_probs[0]
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
            plot.append(step, **{"top-1 probability": probs.max(), "entropy (nats)": entropy})
    return plot, tracer.text[0]
