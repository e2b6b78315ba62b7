"""An invoke's ``as`` name and ``invoker.inputs``; modules attached to a wrapped model.

``with tracer.invoke(...) as invoker:`` binds ``invoker`` inside the body (which lenslab runs
later, in the batched forward), and ``invoker.inputs`` is that invoke's own ``(args, kwargs)``:
ground truth is the tokenizer's output for the prompt alone. ``envoy.name = module`` attaches
the module to the real tree (as nnsight does), so it is traced like any other: ground truth is
a direct call of the modules.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from lenslab import InputError, NNsight

from ..conftest import assert_clean


def test_invoke_as_name_is_bound_in_the_body(tiny_gpt2):
    seen = []
    with tiny_gpt2.trace() as tracer:
        with tracer.invoke("Hello there") as invoker:
            seen.append(invoker)
            ids = invoker.inputs[1]["input_ids"].save()
            hidden = tiny_gpt2.transformer.h[0].output.save()
        with tracer.invoke("A longer second prompt, padded with the first"):
            pass
    assert len(seen) == 1 and seen[0] is invoker
    expected = tiny_gpt2.tokenizer("Hello there", return_tensors="pt")["input_ids"]
    assert torch.equal(ids, expected)  # this invoke's rows alone, before batching and padding
    assert hidden.shape[0] == 1
    assert_clean(tiny_gpt2._model)


def test_invoker_inputs_of_a_plain_module():
    net = nn.Sequential(nn.Linear(3, 4))
    model = NNsight(net)
    x = torch.randn(2, 3)
    with model.trace() as tracer:
        with tracer.invoke(x) as invoker:
            args, kwargs = invoker.inputs
            same = args[0] is x
            out = model.output.save()
    assert same and kwargs == {}
    torch.testing.assert_close(out, net(x))


def test_invoker_inputs_of_a_promptless_invoke_is_an_input_error(tiny_gpt2):
    with pytest.raises(InputError, match="no inputs of its own"):
        with tiny_gpt2.trace() as tracer:
            with tracer.invoke("Hello"):
                pass
            with tracer.invoke() as invoker:
                invoker.inputs  # noqa: B018
    assert_clean(tiny_gpt2._model)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(layer1=nn.Linear(5, 10), layer2=nn.Linear(10, 2)))


def test_attaching_a_module_to_an_envoy_adds_it_to_the_real_tree():
    net = _net()
    model = NNsight(net)
    probe = nn.Linear(2, 3)
    model.probe = probe  # a Sequential calls its modules in order: the probe now runs last
    assert net.probe is probe
    assert model.probe.path == "model.probe"
    x = torch.randn(4, 5)
    with model.trace(x):
        before = model.layer2.output.save()
        probed = model.probe.output.clone().save()
        model.probe.output[:] = 0
        out = model.output.save()
    torch.testing.assert_close(before, net.layer2(net.layer1(x)))
    torch.testing.assert_close(probed, probe(before))
    assert torch.equal(out, torch.zeros(4, 3))
    assert_clean(net)


def test_attaching_replaces_a_module_and_its_envoy():
    net = _net()
    model = NNsight(net)
    old = model.layer2  # the envoy cached for the module being replaced
    assert old._module is net.layer2
    model.layer2 = nn.Sequential(OrderedDict(inner=nn.Linear(10, 2)))
    x = torch.randn(1, 5)
    with model.trace(x):
        inner = model.layer2.inner.output.save()
    torch.testing.assert_close(inner, net.layer2.inner(net.layer1(x)))
    model.note = "plain values stay attributes of the envoy"
    assert "note" not in net._modules and model.note.startswith("plain")
    assert_clean(net)


class Probe(nn.Module):
    """An attachment with a submodule of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + 1


def test_a_hooked_call_in_an_edit_is_seen_by_the_traces_reads_and_edits():
    net = _net()
    model = NNsight(net)
    model.layer1.probe = probe = Probe()
    with model.edit() as edited:
        hidden = model.layer1.output
        model.layer1.output[:] = model.layer1.probe(hidden, hook=True)
    x = torch.randn(3, 5)
    with torch.no_grad():
        h = net.layer1(x)
        inner = probe.inner(h)
        expected = net.layer2(inner + 1)
        zeroed = net.layer2(torch.zeros_like(inner) + 1)
    with torch.no_grad(), edited.trace(x):
        seen_inner = model.layer1.probe.inner.output.clone().save()
        seen_out = model.layer1.probe.output.clone().save()
        out = edited.output.save()
    torch.testing.assert_close(seen_inner, inner)
    torch.testing.assert_close(seen_out, inner + 1)
    torch.testing.assert_close(out, expected)
    with torch.no_grad(), edited.trace(x):  # an edit of the call's submodule reaches the model
        model.layer1.probe.inner.output[:] = 0
        out = edited.output.save()
    torch.testing.assert_close(out, zeroed)
    with torch.no_grad(), edited.trace() as tracer:  # per invoke: each sees its own rows
        with tracer.invoke(x[:1]):
            first = model.layer1.probe.output.save()
        with tracer.invoke(x[1:]):
            rest = model.layer1.probe.output.save()
    torch.testing.assert_close(torch.cat([first, rest]), inner + 1)
    with torch.no_grad(), model.trace(x):  # the unedited model never calls the probe
        plain = model.output.save()
    torch.testing.assert_close(plain, net(x))
    assert_clean(net)


def test_a_hooked_call_of_a_forward_module_leaves_the_forwards_own_call_traced():
    net = _net()
    model = NNsight(net)
    x, other = torch.randn(2, 5), torch.randn(2, 10)
    with torch.no_grad():
        expected = net(x)
        by_hand = net.layer2(other)
    with torch.no_grad(), model.trace() as tracer:
        with tracer.invoke(x):
            early = model.layer2(other, hook=True)  # before the forward reaches layer2
            real = model.layer2.output.save()
            out = model.output.save()
    torch.testing.assert_close(early, by_hand)
    torch.testing.assert_close(real, expected)
    torch.testing.assert_close(out, expected)
    assert_clean(net)


def test_a_hooked_call_leaves_the_models_edits_for_the_forwards_own_call():
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(
            layer1=nn.Linear(5, 10), block=nn.Sequential(OrderedDict(inner=nn.Linear(10, 2)))
        )
    )
    model = NNsight(net)
    with model.edit() as edited:
        model.block.inner.output[:] = 0
    x, other = torch.randn(2, 5), torch.randn(2, 10)
    with torch.no_grad(), edited.trace(x):
        by_hand = edited.block(other, hook=True)  # before the forward reaches the block
        out = edited.output.save()
    assert torch.equal(by_hand, torch.zeros(2, 2))  # the edit ran on the call
    assert torch.equal(out, torch.zeros(2, 2))  # and still on the forward's own call
    assert_clean(net)
