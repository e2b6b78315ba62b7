"""A module's forward shared by ``.skip`` and ``.source``, in one trace and across threads.

Ground truth never goes through lenslab: direct calls of the plain modules, the plain Hugging
Face model with the skipped module's ``forward`` replaced by hand, and plain forward hooks to
capture a call's output and to see on which thread a submodule ran.

The thread tests force an order with events: the first trace pauses once its override is on,
the second starts and pauses once its own is on, then the first finishes while the second
still needs its override (the orders in which separate save/restore code lost a skip, or left
a stale forward behind).
"""

from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from lenslab.engine import forwards

from ..conftest import assert_clean, hooked
from .test_skip import envoys, parts, replaced

PROMPT = "The cat sat on the"
OTHER = "Hello there, how are"  # as many tokens as PROMPT: a batch without padding
WAIT_S = 60


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def model(request):
    return request.getfixturevalue(request.param)


def site_of(model):
    """The call site in block 1's MLP that calls its first projection (``parts``' inner)."""
    return "self_c_fc_0" if hasattr(model._model, "transformer") else "self_gate_proj_0"


def assert_nothing_left(model):
    assert_clean(model._model)
    for module in model._model.modules():
        assert "forward" not in module.__dict__, f"{type(module).__name__} kept a forward"
        assert not forwards.overridden(module)


def encode(model, prompts):
    return model.tokenizer(prompts, return_tensors="pt")


@torch.no_grad()
def plain_logits(model, prompt, make=None):
    """Logits of ``prompt`` alone, block 1's MLP forward replaced by ``make(input)`` if given."""
    _, mlp, _ = parts(model, 1)
    if make is None:
        return model._model(**encode(model, prompt)).logits
    with replaced(mlp, make):
        return model._model(**encode(model, prompt)).logits


@contextmanager
def threads_running(module):
    """Plain torch pre-hook: the ids of the threads on which ``module`` ran."""
    ran: list[int] = []
    handle = module.register_forward_pre_hook(lambda m, a: ran.append(threading.get_ident()))
    try:
        yield ran
    finally:
        handle.remove()


def wait(event):
    assert event.wait(WAIT_S), "the other thread never got there"


# -- the dispatcher on a plain module ------------------------------------------------------------


def test_layers_wrap_the_replacement_in_either_order_and_the_attribute_comes_back_exactly():
    linear = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with torch.no_grad():
        plain, twice = linear(x), 2 * linear(x)

    def replacement(input):
        return 2 * nn.Linear.forward(linear, input)

    def layer(call_next, *args, **kwargs):
        return call_next(*args, **kwargs) + 1

    for previous in (None, linear.forward):  # no instance forward, then one put there by hand
        if previous is not None:
            linear.forward = previous
        for layer_first in (True, False):
            overrides = [
                forwards.Override(linear, layer=layer),
                forwards.Override(linear, replacement=replacement),
            ]
            for override in overrides if layer_first else overrides[::-1]:
                override.apply()
            with torch.no_grad():
                assert torch.equal(linear(x), twice + 1)  # the layer outside, whatever came first
            assert "input" in inspect.signature(linear.forward).parameters
            overrides[1].remove()
            with torch.no_grad():
                assert torch.equal(linear(x), plain + 1)
            overrides[1].remove()  # again: nothing more happens
            overrides[0].remove()
            assert forwards.overridden(linear) is False
            if previous is None:
                assert "forward" not in linear.__dict__
            else:
                assert linear.__dict__["forward"] is previous
            with torch.no_grad():
                assert torch.equal(linear(x), plain)


def test_one_replacement_per_module():
    linear = nn.Linear(4, 3)
    first = forwards.Override(linear, replacement=linear.forward)
    first.apply()
    try:
        with pytest.raises(RuntimeError, match="already replaced"):
            forwards.Override(linear, replacement=linear.forward).apply()
    finally:
        first.remove()
    assert "forward" not in linear.__dict__


# -- .skip and .source of one module in one trace ------------------------------------------------


@pytest.mark.parametrize("skip_first", [True, False], ids=["skip-invoke-first", "source-first"])
def test_a_skip_and_a_source_read_of_the_same_module_in_one_trace(model, skip_first):
    norm, mlp, _ = envoys(model, 1)
    _, _, inner = parts(model, 1)
    site = site_of(model)
    with torch.no_grad(), hooked({"inner": inner}) as truth:
        model._model(**encode(model, OTHER))

    def skipping():
        mlp.skip(torch.zeros_like(norm.output))
        got["skip"] = model.output.logits.save()

    def reading():
        got["read"] = mlp.source[site].output.save()
        got["logits"] = model.output.logits.save()

    got: dict = {}
    bodies = (skipping, reading) if skip_first else (reading, skipping)
    prompts = (PROMPT, OTHER) if skip_first else (OTHER, PROMPT)
    with torch.no_grad(), model.trace() as tracer:
        for body, prompt in zip(bodies, prompts):
            with tracer.invoke(prompt):
                body()
    assert_nothing_left(model)  # first: the ground truth's own forward would hide a leftover
    torch.testing.assert_close(got["skip"], plain_logits(model, PROMPT, torch.zeros_like))
    torch.testing.assert_close(got["logits"], plain_logits(model, OTHER))
    torch.testing.assert_close(got["read"], truth["inner"])


def test_after_an_error_in_the_body_no_forward_is_left(model):
    norm, mlp, _ = envoys(model, 1)
    site = site_of(model)
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error), model.trace() as tracer:
            with tracer.invoke(PROMPT):
                mlp.skip(torch.zeros_like(norm.output))
            with tracer.invoke(OTHER):
                mlp.source[site].output.save()
                assert "forward" in mlp._module.__dict__  # both on while the body runs
                raise error("boom")
        assert_nothing_left(model)
    with torch.no_grad(), model.trace(PROMPT):
        logits = model.output.logits.save()
    torch.testing.assert_close(logits, plain_logits(model, PROMPT))


# -- two threads, one finishing while the other still needs the module's forward -----------------


def skipper(model, value, ran, got, name):
    """A trace whose body skips block 1's MLP (every row), pausing the forward before the MLP
    is called: ``body(ready, go)`` sets ``ready`` once the skip is on, waits for ``go``."""
    norm, mlp, _ = envoys(model, 1)

    def body(ready, go):
        with torch.no_grad(), model.trace() as tracer:
            with tracer.invoke(PROMPT):
                mlp.skip(value)
                got[name] = model.output.logits.save()
            with tracer.invoke():  # every row; its body holds the forward just before the MLP
                norm.output.save()
                ready.set()
                wait(go)
        got[name + " ran"] = threading.get_ident() in ran

    return body


def reader(model, got, name):
    """A trace reading a call inside block 1's MLP, pausing the forward inside that call."""
    _, mlp, _ = envoys(model, 1)
    site = site_of(model)

    def body(ready, go):
        with torch.no_grad(), model.trace(PROMPT):
            got[name] = mlp.source[site].output.save()
            ready.set()
            wait(go)
            got[name + " logits"] = model.output.logits.save()

    return body


@pytest.mark.parametrize(
    "first, second",
    [("skip", "skip"), ("skip", "source"), ("source", "skip"), ("source", "source")],
)
def test_two_threads_the_first_finishing_while_the_second_still_needs_its_forward(
    model, first, second
):
    _, _, inner = parts(model, 1)
    with torch.no_grad():
        shape = model._model(**encode(model, PROMPT)).logits.shape[:2]
        hidden = parts(model, 1)[0].weight.shape[0]
        with hooked({"inner": inner}) as truth:
            plain = model._model(**encode(model, PROMPT)).logits
    values = {"first": torch.zeros(*shape, hidden), "second": torch.full((*shape, hidden), 0.5)}
    want = {
        name: plain_logits(model, PROMPT, lambda x, v=v: v.expand_as(x))
        for name, v in values.items()
    }
    got: dict = {}
    failures: list[BaseException] = []
    first_on, second_on, first_done = threading.Event(), threading.Event(), threading.Event()
    with threads_running(inner) as ran:
        bodies = {
            name: skipper(model, values[name], ran, got, name)
            if kind == "skip"
            else reader(model, got, name)
            for name, kind in (("first", first), ("second", second))
        }

        def run_first():
            try:
                bodies["first"](first_on, second_on)
            except BaseException as error:
                failures.append(error)
                first_on.set()
            finally:
                first_done.set()

        def run_second():
            try:
                wait(first_on)
                bodies["second"](second_on, first_done)
            except BaseException as error:
                failures.append(error)
                second_on.set()

        threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures, failures
    assert_nothing_left(model)  # first: the ground truth's own forward would hide a leftover
    for name, kind in (("first", first), ("second", second)):
        if kind == "skip":
            torch.testing.assert_close(got[name], want[name])
            assert got[name + " ran"] is False, f"the {name} trace's skipped MLP ran"
        else:
            assert torch.equal(got[name], truth["inner"])
            assert torch.equal(got[name + " logits"], plain)


# -- accelerate: a skip stays outside its hook, .source goes inside ------------------------------


def test_a_module_behind_accelerates_hook_skipped_and_read_gets_both_attributes_back(model):
    from accelerate.hooks import ModelHook, add_hook_to_module

    calls: list[int] = []

    class Counting(ModelHook):  # where an offloading hook would load the weights
        def pre_forward(self, module, *args, **kwargs):
            calls.append(1)
            return args, kwargs

    norm, mlp, _ = envoys(model, 1)
    _, module, inner = parts(model, 1)
    site = site_of(model)
    with torch.no_grad(), hooked({"inner": inner}) as truth:
        model._model(**encode(model, OTHER))
    add_hook_to_module(module, Counting())
    wrapper, old = module.__dict__["forward"], module.__dict__["_old_forward"]
    try:
        with torch.no_grad(), model.trace(PROMPT):
            mlp.skip(torch.zeros_like(norm.output))
            alone = model.output.logits.save()
        assert calls == []  # skipped outside accelerate's forward: no weights loaded
        with torch.no_grad(), model.trace() as tracer:
            with tracer.invoke(PROMPT):
                mlp.skip(torch.zeros_like(norm.output))
                skipped = model.output.logits.save()
            with tracer.invoke(OTHER):
                if site == "self_c_fc_0":  # spelled out: a read the tracer foresees
                    read = mlp.source.self_c_fc_0.output.save()
                else:
                    read = mlp.source.self_gate_proj_0.output.save()
                assert module.__dict__["_old_forward"] is not old  # the twin, under the hook
                logits = model.output.logits.save()
        assert calls == [1]  # the other invoke's rows needed it: it ran once, for the batch
        assert module.__dict__["forward"] is wrapper and module.__dict__["_old_forward"] is old
        assert not forwards.overridden(module)
    finally:
        from accelerate.hooks import remove_hook_from_module

        remove_hook_from_module(module)
        module.__dict__.pop("forward", None)  # accelerate leaves the bound method there
    zeroed = plain_logits(model, PROMPT, torch.zeros_like)
    torch.testing.assert_close(alone, zeroed)
    torch.testing.assert_close(skipped, zeroed)
    torch.testing.assert_close(logits, plain_logits(model, OTHER))
    torch.testing.assert_close(read, truth["inner"])
    assert_nothing_left(model)
