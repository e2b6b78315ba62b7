"""PatchingGrid: click a (layer, token) cell to run that one activation patch; run the full
sweep with a button and watch the grid fill in batch by batch."""

from __future__ import annotations

import html
from typing import Any

import traitlets as t

from ..errors import InputError
from ..records import COMPONENT_VIEWS, PatchOutcome, TopToken
from ._base import Refused, bundle
from ._checks import at_least_one, component_of, prompt_ids, require_model
from ._html import render_grid
from ._protocol import Request
from ._work import RunsWork, Step
from .heatmap import Heatmap


class PatchingGrid(Heatmap, RunsWork):
    """Layers x positions of an activation-patching sweep of one component (resid/attn/mlp).

    Scores are normalized as in ``activation_patching``: 1 = the clean logit difference
    (``answer`` minus ``wrong``) fully restored, 0 = no effect. ``detail`` holds the last
    clicked cell's PatchOutcome: top-k next tokens for clean, corrupted and patched runs.

    The "Run full sweep" button runs the sweep in the background with progress, time left and
    a Cancel button (``task``, ``progress``, ``eta``; ``cancel()``); a cell clicked meanwhile
    is refused with a note. ``result`` holds the last finished sweep's PatchingResult.

    Examples:
        >>> grid = PatchingGrid(model, clean, corrupted, " Mary", " John")
        >>> grid.patch(20, 13).patched[0].token      # what clicking cell (20, 13) shows
        ' John'
    """

    _esm = bundle("patching_grid")
    component = t.Unicode("resid").tag(sync=True)
    detail = t.Dict().tag(sync=True)
    summary = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        model: Any,
        clean: str,
        corrupted: str,
        answer: str | int,
        wrong: str | int,
        *,
        component: str = "resid",
        top_k: int = 5,
        result: Any = None,
        **kwargs: Any,
    ) -> None:
        import torch

        from ..tools.patching import clean_and_corrupted, logit_difference

        require_model(model, "PatchingGrid")
        component_of(component, COMPONENT_VIEWS, "PatchingGrid")
        at_least_one(top_k, "top_k", "PatchingGrid")
        prompt_ids(model, clean, "PatchingGrid")
        prompt_ids(model, corrupted, "PatchingGrid")
        self._prompts = (clean, corrupted)
        clean, corrupted = clean_and_corrupted(model, clean, corrupted)
        self._model, self._clean, self._corrupted = model, clean, corrupted
        self._answer, self._wrong, self._top_k = answer, wrong, top_k
        self._measure = logit_difference(model, answer, wrong)
        view = COMPONENT_VIEWS[component]
        with torch.no_grad(), model.trace() as tracer:
            with tracer.invoke(clean.ids):
                layers = getattr(model, view)
                acts = [layers[i][0].clone() for i in range(model.num_layers)]
                clean_logits = model.logits.save()
            with tracer.invoke(corrupted.ids):
                corrupted_logits = model.logits.save()
        self._acts = acts
        self.result: Any = None
        self.clean_metric = float(self._measure(clean_logits)[0])
        self.corrupted_metric = float(self._measure(corrupted_logits)[0])
        self._clean_top = self._top(clean_logits)
        self._corrupted_top = self._top(corrupted_logits)
        cols = [
            f"{i}: {a!r}" + ("" if a == b else f" / {b!r}")
            for i, (a, b) in enumerate(zip(clean.text, corrupted.text))
        ]
        super().__init__(
            rows=[f"layer {i}" for i in range(model.num_layers)],
            cols=cols,
            component=component,
            colors="diverging",
            legend="score (1 = clean restored, 0 = no effect)",
            title=f"Activation patching: {component} ({clean.describe()})",
            summary=(
                f"logit diff {answer!r} - {wrong!r}: clean {self.clean_metric:.3f}, "
                f"corrupted {self.corrupted_metric:.3f}"
            ),
            **kwargs,
        )
        if result is not None:
            self.fill(result)

    def fill(self, result: Any) -> None:
        """Show an ``activation_patching`` result of the same prompts (per-position sweep)."""
        if result.positions == "all" or self.component not in result.scores:
            raise InputError(
                f"PatchingGrid shows a per-position sweep of {self.component!r}; got positions="
                f"{result.positions!r}, components {list(result.scores)}"
            )
        array = self.array
        array[:, result.positions] = result.scores[self.component].numpy()
        self.set_all(array)

    def patch(self, layer: int, position: int) -> PatchOutcome:
        """Run one patch (clean activation at ``layer``, ``position`` into the corrupted run)."""
        import torch

        if not (0 <= layer < len(self.rows) and 0 <= position < len(self.cols)):
            raise InputError(
                f"cell ({layer}, {position}) is outside the {len(self.rows)} x "
                f"{len(self.cols)} grid: layers 0-{len(self.rows) - 1}, positions "
                f"0-{len(self.cols) - 1}."
            )
        model = self._model
        with torch.no_grad(), model.trace(self._corrupted.ids):
            getattr(model, COMPONENT_VIEWS[self.component])[layer][:, position] = self._acts[layer][
                position
            ]
            logits = model.logits.save()
        span = self.clean_metric - self.corrupted_metric
        score = (float(self._measure(logits)[0]) - self.corrupted_metric) / span
        return PatchOutcome(
            self.component,
            layer,
            position,
            self._clean.text[position],
            score,
            self._clean_top,
            self._corrupted_top,
            self._top(logits),
        )

    def sweep(self, batch_size: int | None = None) -> Any:
        """The full ``activation_patching`` sweep, filling the grid after every batch.

        Runs in the cell (interrupt the kernel to stop it: the filled cells stay); the
        widget's button runs the same sweep in the background, cancellable.
        """
        self.run_now("sweep", lambda step: self._sweep(step, batch_size))
        return self.result

    def _sweep(self, step: Step, batch_size: int | None) -> None:
        from ..tools import activation_patching

        total = len(self.rows) * len(self.cols)
        done = 0

        def fill(jobs: list[tuple[str, int, Any]], scores: Any) -> None:
            nonlocal done
            array = self.array
            for (_, layer, position), score in zip(jobs, scores.tolist()):
                array[layer, position] = score
            done += len(jobs)
            self.set_all(array)
            step(done, total)  # raises Cancelled when asked to stop: the filled cells stay

        step(0, total)
        self.result = activation_patching(
            self._model,
            *self._prompts,
            self._answer,
            self._wrong,
            components=[self.component],
            batch_size=batch_size or len(self.cols),
            progress=False,
            on_batch=fill,
        )

    # -- front-end requests ---------------------------------------------------------------------

    def handle_patch(self, request: Request) -> None:
        if self.running:
            raise Refused(
                f"refused: the {self.task} is running ({self.progress:.0%}); cancel it or wait "
                f"for it, then click layer {request.get('layer')}, position "
                f"{request.get('position')} again."
            )
        self.busy = True
        outcome = self.patch(int(request["layer"]), int(request["position"]))
        with self.hold_sync():
            self.set_cell(outcome.layer, outcome.position, outcome.score)
            self.selected = [outcome.layer, outcome.position]
            self.detail = outcome.to_json()

    def handle_sweep(self, request: Request) -> None:
        size = request.get("batch_size")
        self.run_in_background("sweep", lambda step: self._sweep(step, size))

    def _top(self, logits: Any) -> list[TopToken]:
        top = logits[0, -1].softmax(-1).topk(self._top_k)
        decode = self._model.tokenizer.decode
        return [
            TopToken(decode(int(i)), int(i), float(p))
            for p, i in zip(top.values.tolist(), top.indices.tolist())
        ]

    def to_html(self) -> str:
        outcome = ""
        if self.detail:
            d = self.detail
            lists = "".join(
                f"<td style='vertical-align:top'><b>{name}</b><br>"
                + "<br>".join(f"{html.escape(repr(x['token']))} {x['prob']:.3f}" for x in d[name])
                + "</td>"
                for name in ("clean", "corrupted", "patched")
            )
            outcome = (
                f"<p>patched layer {d['layer']}, position {d['position']} "
                f"({html.escape(repr(d['token']))}): score {d['score']:.3f}</p>"
                f"<table><tr>{lists}</tr></table>"
            )
        return render_grid(self.record()) + f"<p>{html.escape(self.summary)}</p>" + outcome
