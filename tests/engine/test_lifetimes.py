"""A trace lets go of the forward's values when its block ends, without the garbage collector.

The README promises that values a block did not save are dropped at once. Reference cycles
(the tracer held the caller's frame, whose locals hold the tracer) would keep them until the
collector runs, so these tests run with it disabled and watch the values through weakrefs.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import torch

from lenslab import NNsight

from .test_interrupts import Net


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_value_the_block_read_but_did_not_keep_is_gone_right_after_it(no_collector):
    net = Net()
    model = NNsight(net)
    produced: list[weakref.ref[torch.Tensor]] = []
    handle = net.first.register_forward_hook(lambda m, a, out: produced.append(weakref.ref(out)))
    try:
        with model.trace(torch.randn(2, 4)) as tracer:
            total = model.first.output.sum().save()  # reads first's output, keeps only a sum
            out = model.output.save()
        assert len(produced) == 1
        assert produced[0]() is None, "first's output outlived the block"
        assert tracer.result is not None and out is not None and total.ndim == 0
    finally:
        handle.remove()


def test_locals_of_a_function_that_traced_die_when_it_returns(no_collector):
    net = Net()
    model = NNsight(net)
    seen: list[weakref.ref[torch.Tensor]] = []

    def run(x: torch.Tensor) -> torch.Tensor:
        with model.trace(x) as tracer:
            hidden = model.first.output  # bound, not saved
            seen.append(weakref.ref(hidden))
            out = model.output.save()
        assert tracer is not None
        return out

    x = torch.randn(2, 4)
    out = run(x)
    with torch.no_grad():
        assert torch.equal(out, net(x))  # the saved value lives on, exact
    assert seen[0]() is None, "an unsaved local of the traced function outlived it"


def test_invokes_let_go_of_unsaved_values_too(no_collector):
    net = Net()
    model = NNsight(net)
    seen: list[weakref.ref[torch.Tensor]] = []

    def run() -> torch.Tensor:
        with model.trace() as tracer:
            with tracer.invoke(torch.randn(2, 4)):
                hidden = model.first.output
                seen.append(weakref.ref(hidden))
                out = model.output.save()
        return out

    out = run()
    assert out.shape == (2, 3)
    assert seen[0]() is None, "an unsaved value of an invoke outlived the trace"
