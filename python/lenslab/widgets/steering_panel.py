"""SteeringPanel: a coefficient slider and layer choice; baseline and steered text side by side.

Each change of ``coefficient`` or ``layers`` (the front end debounces the slider) regenerates
both continuations in one batched generation, with ``busy`` set while it runs.
"""

from __future__ import annotations

import contextlib
import html
import math
from collections.abc import Sequence
from typing import Any

import traitlets as t

from ..errors import InputError
from ._base import bundle
from ._checks import BadValue, at_least_one, prompt_ids, require_model
from ._work import Cancelled, RunsWork, Step


class _Number(t.Float):  # type: ignore[misc]
    """A float trait whose wrong-type error is a LensError (BadValue) shown in the widget."""

    def error(self, obj: Any, value: Any, *_args: Any, **_kwargs: Any) -> None:
        message = (
            f"{self.name} must be a finite number, got {value!r} ({type(value).__name__}): e.g. "
            f"panel.{self.name} = 2.0."
        )
        if isinstance(obj, t.HasTraits) and obj.has_trait("error"):
            obj.error = message
        raise BadValue(message)


class SteeringPanel(RunsWork):
    """Steer ``prompt`` with a vector from two prompt sets (``positive`` / ``negative``) or a
    saved tensor (``vector``), at ``layers``, scaled by ``coefficient``.

    ``layers`` defaults to a quarter of the way in, where steering tends to read well. With
    prompt sets the vector is recomputed at the first chosen layer whenever the layers
    change; a saved tensor is used as it is.

    A slider move or layer choice in the widget regenerates in the background, with progress,
    time left and a Cancel button; a newer move while one runs stops it and is shown as queued
    (the latest setting runs next). A change from code regenerates in the cell.

    Examples:
        >>> panel = SteeringPanel(model, "I think that you are", positive=["I love you"],
        ...                       negative=["I hate you"], layers=8)
    """

    _esm = bundle("steering_panel")
    prompt = t.Unicode("").tag(sync=True)
    num_layers = t.Int(0).tag(sync=True)
    layers = t.List(t.Int()).tag(sync=True)
    coefficient = _Number(1.0).tag(sync=True)
    low = t.Float(-5.0).tag(sync=True)
    high = t.Float(5.0).tag(sync=True)
    source = t.Unicode("").tag(sync=True)
    baseline = t.Unicode("").tag(sync=True)
    steered = t.Unicode("").tag(sync=True)
    runs = t.Int(0).tag(sync=True)  # generations so far: the front end shows the latest
    # The setting that produced the texts shown: headers change with the text they label, not
    # when the slider moves.
    shown_coefficient = t.Float(None, allow_none=True).tag(sync=True)
    shown_layers = t.List(t.Int()).tag(sync=True)

    def __init__(
        self,
        model: Any,
        prompt: str,
        *,
        positive: Sequence[str] | None = None,
        negative: Sequence[str] | None = None,
        vector: Any = None,
        layers: int | Sequence[int] | None = None,
        coefficient: float = 1.0,
        coefficient_range: tuple[float, float] = (-5.0, 5.0),
        positions: Any = None,
        max_new_tokens: int = 20,
        **kwargs: Any,
    ) -> None:
        require_model(model, "SteeringPanel")
        if (vector is None) == (positive is None or negative is None):
            raise InputError(
                "SteeringPanel takes either positive and negative prompt sets "
                "(positive=[...], negative=[...]) or a saved vector (vector=...), not both."
            )
        for name, prompts in (("positive", positive), ("negative", negative)):
            if prompts is not None and (isinstance(prompts, str) or not prompts):
                raise InputError(
                    f"SteeringPanel: {name} must be a non-empty list of prompts, got {prompts!r}."
                )
        low, high = coefficient_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InputError(
                f"SteeringPanel: coefficient_range must be (low, high) with low < high, got "
                f"{coefficient_range!r}."
            )
        at_least_one(max_new_tokens, "max_new_tokens", "SteeringPanel")
        prompt_ids(model, prompt, "SteeringPanel")
        self._model = model
        self._pairs = (list(positive or []), list(negative or []))
        self._vector = vector
        self._vectors: dict[int, Any] = {}
        self._positions = positions
        self._max_new_tokens = max_new_tokens
        self._live = False  # no regeneration per trait while __init__ sets them
        self._from_front_end = False
        source = (
            f"mean({self._pairs[0]}) - mean({self._pairs[1]})"
            if vector is None
            else f"saved vector, shape {tuple(vector.shape)}"
        )
        super().__init__(
            prompt=prompt,
            num_layers=int(model.num_layers),
            layers=_layers(layers, int(model.num_layers)),
            coefficient=coefficient,
            low=low,
            high=high,
            source=source,
            **kwargs,
        )
        self.regenerate()
        self._live = True

    def vector_for(self, layer: int) -> Any:
        """The steering vector used when ``layer`` is the first chosen layer."""
        if self._vector is not None:
            return self._vector
        if layer not in self._vectors:
            from ..tools import steering_vector

            self._vectors[layer] = steering_vector(self._model, *self._pairs, layer=layer)
        return self._vectors[layer]

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A change from the front end (the slider, a layer chip): regenerate in the background."""
        self._from_front_end = True
        try:
            super().set_state(sync_data)
        finally:
            self._from_front_end = False

    @t.observe("coefficient", "layers", "prompt")
    def _changed(self, _change: Any) -> None:
        if not self._live:
            return
        if self._from_front_end:
            setting = f"×{self.coefficient:g} at layers {self.layers}"
            self.run_in_background("generate", self._generate, queue_as=setting)
            return
        self.cancel()  # a change from code: its result is what counts, now
        self.wait()
        with contextlib.suppress(Exception):  # already shown in the panel as `error`
            self.regenerate()

    def regenerate(self) -> None:
        """Generate baseline and steered continuations for the current settings (in the cell)."""
        self.run_now("generate", self._generate)

    def _generate(self, step: Step) -> None:
        from ..tools import steer

        coefficient, layers, prompt = self.coefficient, list(self.layers), self.prompt
        if not layers:
            self.error = "choose at least one layer"
            return
        total = self._max_new_tokens
        made = 0

        def each_token(ids: Any, _scores: Any, **_kwargs: Any) -> Any:
            """A stopping criterion: reports progress; stops every row once cancelled."""
            nonlocal made
            made += 1
            self.report(made, total)
            last = ids[:, -1]
            return last == last if self.stopping() else last != last

        step(0, total)
        result = steer(
            self._model,
            prompt,
            self.vector_for(layers[0]),
            layers,
            coefficient=coefficient,
            positions=self._positions,
            max_new_tokens=total,
            stopping_criteria=[each_token],
        )
        if self.stopping():
            raise Cancelled("generation cancelled")  # a partial text is not shown
        assert result.texts is not None
        with self.hold_sync():
            self.baseline, self.steered = result.texts
            self.shown_coefficient, self.shown_layers = coefficient, layers
            self.runs += 1

    @t.validate("layers")
    def _valid_layers(self, proposal: Any) -> list[int]:
        chosen = sorted({int(v) for v in proposal["value"]})
        bad = [v for v in chosen if not 0 <= v < self.num_layers]
        if bad:
            self.error = f"layers {bad} out of range: use layers 0 to {self.num_layers - 1}."
            raise BadValue(self.error)
        return chosen

    @t.validate("coefficient")
    def _valid_coefficient(self, proposal: Any) -> float:
        """A finite number; beyond the slider's range it widens the range to include it."""
        value = proposal["value"]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            self.error = (
                f"coefficient must be a finite number, got {value!r} ({type(value).__name__}): "
                f"e.g. panel.coefficient = 2.0."
            )
            raise BadValue(self.error)
        value = float(value)
        # whole-number ends keep the slider's 0.1 steps on round values
        if value < self.low:
            self.low = float(math.floor(value))
        if value > self.high:
            self.high = float(math.ceil(value))
        return value

    @t.validate("low", "high")
    def _valid_range(self, proposal: Any) -> float:
        value = float(proposal["value"])
        low = value if proposal["trait"].name == "low" else self.low
        high = value if proposal["trait"].name == "high" else self.high
        if not (math.isfinite(value) and low < high):
            self.error = (
                f"the coefficient range must be finite with low < high, got low={low!r}, "
                f"high={high!r}."
            )
            raise BadValue(self.error)
        return value

    @t.observe("low", "high")
    def _keep_inside(self, _change: Any) -> None:
        """A narrower range set from code moves the coefficient inside it (as a slider does)."""
        clamped = min(max(self.coefficient, self.low), self.high)
        if clamped != self.coefficient:
            self.coefficient = clamped

    @t.validate("prompt")
    def _valid_prompt(self, proposal: Any) -> str:
        try:
            prompt_ids(self._model, proposal["value"], "SteeringPanel")
        except InputError as problem:
            self.error = str(problem)
            raise BadValue(str(problem)) from None
        return str(proposal["value"])

    def to_records(self) -> list[dict[str, Any]]:
        """The two texts shown: ``run`` ("baseline" / "steered"), the ``coefficient`` and
        ``layers`` that produced them, and the ``text``."""
        return [
            {"run": "baseline", "coefficient": 0.0, "layers": [], "text": self.baseline},
            {"run": "steered", "coefficient": self.shown_coefficient,
             "layers": list(self.shown_layers), "text": self.steered},
        ]  # fmt: skip

    def figure(self, theme: str | None = "auto") -> Any:
        """Baseline and steered text side by side, as a plotly table."""
        import plotly.graph_objects as go

        from ..records.export import themed

        rows = self.to_records()
        figure = go.Figure(
            go.Table(
                header={"values": ["baseline", f"steered (x{rows[1]['coefficient'] or 0:g}, "
                                   f"layers {rows[1]['layers']})"]},
                cells={"values": [[rows[0]["text"]], [rows[1]["text"]]], "align": "left"},
            )
        )  # fmt: skip
        figure.update_layout(title=f"Steering: {self.source}", height=320)
        return themed(figure, theme)

    def to_html(self) -> str:
        def column(title: str, text: str) -> str:
            return (
                f"<td style='vertical-align:top;padding:4px 8px;width:50%'><b>{title}</b>"
                f"<div style='white-space:pre-wrap'>{html.escape(text)}</div></td>"
            )

        shown = self.coefficient if self.shown_coefficient is None else self.shown_coefficient
        return (
            f"<div style='font:12px system-ui'>Steering at layers {self.shown_layers}, "
            f"coefficient {shown:g} ({html.escape(self.source)})<table><tr>"
            f"{column('baseline', self.baseline)}"
            f"{column(f'steered (x{shown:g})', self.steered)}</tr></table></div>"
        )


def _layers(layers: int | Sequence[int] | None, count: int) -> list[int]:
    if layers is None:
        return [count // 4]
    return [layers] if isinstance(layers, int) else list(layers)
