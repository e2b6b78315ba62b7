"""A KeyboardInterrupt at any line the engine runs leaves no trace behind.

Ctrl-C lands between any two instructions, so the test delivers one at every line the engine
executes during a trace, in turn: a trace function raises KeyboardInterrupt at the Nth line
event inside lenslab/engine/ (CPython then turns tracing off, so each run gets exactly one),
for N = 1, 2, ... until a run completes without reaching N. On the small network that is every
line event; on the language models (whose loops over layers and steps repeat the same lines
thousands of times, each run tens of milliseconds) it is the first run of every distinct line,
which keeps the test under a minute. After each interrupted run: the
user saw KeyboardInterrupt (never an internal type), no lenslab hook is left on the model, no
trace is registered, and the next trace gives exactly what plain torch hooks give.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import torch
from torch import nn

import lenslab.engine
from lenslab import NNsight

from ..conftest import assert_clean, hooked, layers_of

ENGINE = str(Path(lenslab.engine.__file__).parent)
PROMPTS = ("The cat sat on", "A dog ran to")
MAX_LINES = 20_000  # a bound only: a run that never completes fails the test instead of hanging


class Interrupter:
    """A ``sys.settrace`` function that raises KeyboardInterrupt at the Nth engine line."""

    def __init__(self, at: int, distinct: bool) -> None:
        self.at = at
        self.seen = 0
        self.where = ""
        self._lines: set[tuple[object, int]] | None = set() if distinct else None

    @property
    def fired(self) -> bool:
        return self.seen >= self.at

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self.line if frame.f_code.co_filename.startswith(ENGINE) else None

    def line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and not self.fired:
            if self._lines is not None:  # count each line only the first time it runs
                line = (frame.f_code, frame.f_lineno)
                if line in self._lines:
                    return self.line
                self._lines.add(line)
            self.seen += 1
            if self.fired:
                self.where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                raise KeyboardInterrupt(f"test interrupt at engine line event {self.at}")
        return self.line


def assert_no_trace_registered() -> None:
    from lenslab.engine import mediator, saving, tracer

    assert not tracer._open, tracer._open
    assert not mediator._bodies, mediator._bodies
    assert not saving._open_traces, saving._open_traces
    assert not hasattr(torch.ones(1), "save")


def interrupt_everywhere(
    run: Callable[[], Any], module: nn.Module, check: Callable[[Any], None], distinct: bool
) -> int:
    """Interrupt ``run()`` at each engine line in turn; check the state after each. Returns
    how many lines were interrupted (so the test can tell that it covered something)."""
    before = sys.gettrace()
    for at in range(1, MAX_LINES):
        interrupter = Interrupter(at, distinct)
        sys.settrace(interrupter)
        try:
            result = run()
        except KeyboardInterrupt as error:
            assert "test interrupt" in str(error), f"line {at}: a different interrupt: {error!r}"
            assert interrupter.fired
            result = None
        finally:
            sys.settrace(before)
        where = f"interrupted at engine line event {at} ({interrupter.where})"
        try:
            assert_clean(module)
            assert_no_trace_registered()
        except AssertionError as error:
            raise AssertionError(f"{where}: {error}") from None
        if not interrupter.fired:  # every line of the trace has had its interrupt
            check(result)
            return at - 1
        assert result is None, f"{where}: the run finished as if not interrupted"
        try:
            check(run())  # the next trace, uninterrupted, is exact
            assert_clean(module)
            assert_no_trace_registered()
        except Exception as error:
            message = f"{where}, then a trace: {type(error).__name__}: {error}"
            raise AssertionError(message) from error
    pytest.fail(f"the run still reached engine line {MAX_LINES}")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(4, 6)
        self.second = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


def test_an_inline_trace_with_an_edit():
    net = Net()
    model = NNsight(net)
    x = torch.randn(2, 4)
    with hooked({"first": net.first}, edit={"first": lambda o: o * 2}), torch.no_grad():
        expected = net(x)

    def run() -> torch.Tensor:
        with model.trace(x):
            model.first.output[:] = model.first.output * 2
            out = model.output.save()
        return out

    def check(out: torch.Tensor) -> None:
        assert torch.equal(out, expected)

    assert interrupt_everywhere(run, net, check, distinct=False) > 50


def test_a_trace_with_two_invokes(tiny_gpt2):
    lm = tiny_gpt2
    lengths = {len(lm.tokenizer(p).input_ids) for p in PROMPTS}
    assert len(lengths) == 1, "equal lengths: the batch has no padding to reason about"
    batch = lm.tokenizer(list(PROMPTS), return_tensors="pt")
    layer = layers_of(lm._model)[1]
    with hooked({"layer": layer}) as captured, torch.no_grad():
        logits = lm._model(**batch).logits
    expected_hidden = captured["layer"][0] if isinstance(captured["layer"], tuple) else None

    def run() -> tuple[torch.Tensor, torch.Tensor, Any]:
        with lm.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                first = lm.lm_head.output.save()
            with tracer.invoke(PROMPTS[1]):
                second = lm.lm_head.output.save()
                hidden = lm.transformer.h[1].output.save()
        return first, second, hidden

    def check(result: tuple[torch.Tensor, torch.Tensor, Any]) -> None:
        first, second, hidden = result
        assert torch.equal(first, logits[0:1]) and torch.equal(second, logits[1:2])
        got = hidden[0] if isinstance(hidden, tuple) else hidden
        want = expected_hidden if expected_hidden is not None else captured["layer"]
        assert torch.equal(got, want[1:2])

    assert interrupt_everywhere(run, lm._model, check, distinct=True) > 100


def test_a_generation_step_loop(tiny_gpt2):
    lm = tiny_gpt2
    prompt = PROMPTS[0]
    ids = lm.tokenizer(prompt, return_tensors="pt")
    with hooked({"head": lm._model.lm_head}), torch.no_grad():
        expected = lm._model.generate(
            **ids, max_new_tokens=3, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id
        )

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        with lm.generate(prompt, max_new_tokens=3, do_sample=False) as tracer:
            heads = []
            for _ in tracer.iter[0:3]:
                heads.append(lm.lm_head.output.save())
        return tracer.result, heads

    def check(result: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
        tokens, heads = result
        assert torch.equal(tokens, expected)
        # each step's last logits chose the token generated at that step (greedy)
        chosen = [h[0, -1].argmax().item() for h in heads]
        assert chosen == expected[0, ids.input_ids.shape[1] :].tolist()

    assert interrupt_everywhere(run, lm._model, check, distinct=True) > 100


def test_a_body_that_fails_while_the_forward_waits():
    """The cleanup then unwinds a paused forward (interleaver.abort): interrupted there too."""
    net = Net()
    model = NNsight(net)
    x = torch.randn(2, 4)
    first = net.first(x)

    def run() -> torch.Tensor:
        try:
            with model.trace(x):
                seen = model.first.output.save()
                raise ValueError("the body failed")
        except ValueError:
            return seen

    def check(seen: torch.Tensor) -> None:
        assert torch.equal(seen, first)

    assert interrupt_everywhere(run, net, check, distinct=False) > 50
