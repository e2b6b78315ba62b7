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
    """Per-step values during a generation, one panel (its own y axis) per series, on a plotly
    FigureWidget; steps are labelled with the token generated there, on the axis and on hover.

    ``append`` extends each line in place: plotly sends only the changed traces, the figure is
    not re-rendered.

    Examples:
        >>> plot = StepPlot(["top-1 p"])
        >>> with model.generate(prompt, max_new_tokens=10) as tracer:
        ...     for step in tracer.all():
        ...         probs = model.next_token_probs[0]
        ...         token = model.tokenizer.decode(probs.argmax())
        ...         plot.append(step, token=token, **{"top-1 p": probs.max()})
    """

    def __init__(self, series: Sequence[str], *, title: str = "", y_title: str = "") -> None:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from ..records.export import NEUTRAL_LAYOUT

        self.series = list(series)
        if not self.series or len(set(self.series)) != len(self.series):
            raise InputError(
                f"StepPlot needs one or more distinct series names, got {self.series}: e.g. "
                f"StepPlot(['top-1 probability', 'entropy (nats)'])."
            )
        count = len(self.series)
        base = make_subplots(rows=count, cols=1, shared_xaxes=True, vertical_spacing=0.06)
        for row, name in enumerate(self.series, start=1):
            base.add_trace(
                go.Scatter(
                    x=[],
                    y=[],
                    customdata=[],
                    name=name,
                    mode="lines+markers",
                    # names the column (step and its token), the row (series) and the value
                    hovertemplate=f"step %{{x}} → %{{customdata}}<br>{_escape(name)}: "
                    "%{y:.4g}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            axis_title = y_title if count == 1 and y_title else name
            base.update_yaxes(title_text=axis_title, row=row, col=1)
        base.update_xaxes(title_text="step (generated token)", row=count, col=1)
        base.update_layout(title=title, height=max(320, 200 * count), showlegend=False)
        self.figure = go.FigureWidget(base)
        self.figure.update_layout(**NEUTRAL_LAYOUT)  # readable on light and dark themes
        self.steps: list[int] = []
        self.tokens: list[str] = []

    def append(self, step: int, token: str | None = None, **values: Any) -> None:
        """Add one point per named series at ``step``; ``token`` is what was generated there."""
        unknown = sorted(set(values) - set(self.series))
        if unknown:
            raise InputError(
                f"StepPlot has no series {unknown}; its series are {self.series} (name them "
                f"when you create it: StepPlot([...]))."
            )
        shown = repr(token) if token is not None else "?"
        self.steps.append(int(step))
        self.tokens.append(token if token is not None else "")
        labels = [f"{s}: {t!r}" if t else str(s) for s, t in zip(self.steps, self.tokens)]
        with self.figure.batch_update():
            for trace in self.figure.data:
                if trace.name in values:
                    trace.x = (*trace.x, step)
                    trace.y = (*trace.y, float(values[trace.name]))
                    trace.customdata = (*trace.customdata, shown)
            self.figure.update_xaxes(
                tickmode="array", tickvals=list(self.steps), ticktext=labels, tickangle=-45
            )

    def values(self, name: str) -> list[float]:
        """The values of series ``name``, one per step."""
        if name not in self.series:
            raise InputError(f"StepPlot has no series {name!r}; its series are {self.series}.")
        trace = self.figure.data[self.series.index(name)]
        return list(trace.y)

    def to_numpy(self) -> Any:
        """``(steps, series)`` float array, columns in the order of ``series``."""
        import numpy as np

        return np.array([self.values(name) for name in self.series], dtype=float).T.reshape(
            len(self.steps), len(self.series)
        )

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per step: ``step``, ``token`` and one key per series."""
        columns = {name: self.values(name) for name in self.series}
        return [
            {"step": step, "token": token, **{name: columns[name][i] for name in self.series}}
            for i, (step, token) in enumerate(zip(self.steps, self.tokens))
        ]

    def to_dataframe(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas must be installed)."""
        from ..records.export import dataframe

        return dataframe(self.to_records(), ["step", "token", *self.series])

    def static_figure(self, theme: str | None = "auto") -> Any:
        """A static copy of ``figure`` (a plain plotly Figure), laid out for ``theme``."""
        import plotly.graph_objects as go

        from ..records.export import themed

        return themed(go.Figure(self.figure), theme)

    def save(self, path: Any) -> Any:
        """Write the plot: ``.html`` (interactive), or ``.png`` / ``.svg`` (needs kaleido)."""
        from pathlib import Path

        target = Path(path)
        kind = target.suffix.lower().lstrip(".")
        if kind == "html":
            self.static_figure(theme="light").write_html(target)
            return target
        if kind not in ("svg", "png"):
            raise InputError(f"save({str(path)!r}): the file must end in .html, .svg or .png.")
        try:
            self.static_figure(theme="light").write_image(target)
        except (ImportError, ValueError, RuntimeError) as problem:
            raise InputError(
                f"saving the plot as .{kind} goes through plotly's image export, which failed "
                f"({problem}): pip install kaleido, or save as .html."
            ) from None
        return target

    def to_html(self) -> str:
        head = "<tr><th>step</th>" + "".join(
            f"<th>{s}: {html.escape(repr(t))}</th>" for s, t in zip(self.steps, self.tokens)
        )
        rows = "".join(
            f"<tr><th>{html.escape(str(trace.name))}</th>"
            + "".join(f"<td>{y:.3g}</td>" for y in trace.y)
            + "</tr>"
            for trace in self.figure.data
        )
        return f"<table style='font:12px system-ui'>{head}</tr>{rows}</table>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = dict(self.figure._repr_mimebundle_(**kwargs))
        data["text/html"] = self.to_html()
        return data


def _escape(text: str) -> str:
    """``text`` inside a plotly hovertemplate: markup and ``%{`` taken literally."""
    return html.escape(text).replace("%{", "%&#123;")


def generation_plot(
    model: Any, prompt: str, *, max_new_tokens: int = 12, display: bool = True
) -> tuple[StepPlot, str]:
    """Generate greedily, plotting the chosen token's probability and the entropy at each step,
    each on its own axis, the step labelled with the token it generated.

    Returns (the plot, the generated text).
    """
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
            chosen = model.tokenizer.decode(int(probs.argmax()))  # greedy: the token generated
            plot.append(
                step,
                token=chosen,
                **{"top-1 probability": probs.max(), "entropy (nats)": entropy},
            )
    return plot, tracer.text[0]
