"""Bodies that only keep references run the forward straight through, with the same results.

Which bodies count is checked on source alone; how they run is checked against plain forward
hooks in the same forward (the very same objects), and by a probe hook that sees how far the
body had got when the forward reached the last module: a passive body's forward runs before
the body's first read returns, any other body's forward waits for each read.
"""

from __future__ import annotations

import ast
import textwrap

import pytest
import torch
from torch import nn

from lenslab import NNsight
from lenslab.engine.passive import passive
from lenslab.errors import ModuleNotCalledError

from ..conftest import assert_clean, hooked, layers_of

PASSIVE = [
    "for i in range(5):\n    kept.append(net[i].output.save())",
    "h = model.model.layers[5].output.save()\nlogits = model.output.logits.save()",
    "hs = [model.model.layers[i].output[:, -1].save() for i in range(len(model.model.layers))]",
    "kept = []\nfor i in range(3):\n    kept.append(model.layers_output[i])",
    "a, b = model.x.output, model.y.input",
    "first, last = model.x.output[0], model.x.output[..., -1:]",
]
NOT_PASSIVE = [
    "h = model.x.output\nprint(h)",  # any call but .save(), list.append and a few builtins
    "h = model.x.output.clone().save()",  # computes on the value
    "h = model.x.output.norm()",
    "h = f(model.x.output)",
    "model.x.output[:] = 0",  # edits
    "model.x.output = y",
    "h = model.x.output\nh += 1",
    "h = model.x.output[index]",  # a name may hold a tensor: advanced indexing copies
    "h = model.x.output.save()\nk = h * 2",  # uses a read value
    "kept.append(model.x.output)\nfirst = kept[0]",
    "kept = other\nkept.append(model.x.output)",
    "layer = model.x\nh = layer.output",  # a module path bound inside the block
    "h = model.layers[pick(1)].output",
    "if flag:\n    h = model.x.output",
    "tracer.stop()",
    "with tracer.invoke('a'):\n    h = model.x.output",
    "h = model.layers_output",  # reads happen when it is indexed or iterated
    "for h in standard:\n    kept.append(h)",
    "for i, layer in enumerate(model.model.layers):\n    kept.append(layer.output)",
    "a, b = standard",
]


@pytest.mark.parametrize("source", PASSIVE)
def test_bodies_that_only_keep_references_are_passive(source):
    assert passive(ast.parse(textwrap.dedent(source)).body) is not None


@pytest.mark.parametrize("source", NOT_PASSIVE)
def test_bodies_that_may_do_more_are_not(source):
    assert passive(ast.parse(textwrap.dedent(source)).body) is None


def _net() -> NNsight:
    torch.manual_seed(0)
    return NNsight(
        nn.Sequential(
            nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)
        )
    )


def _probe(module: nn.Module, kept: list) -> tuple[list[int], object]:
    """How many values the body had kept when ``module`` ran (a plain hook)."""
    seen: list[int] = []
    return seen, module.register_forward_hook(lambda m, a, o: seen.append(len(kept)))


X = torch.randn(3, 4)


def test_a_passive_body_gets_the_very_objects_a_plain_hook_sees():
    net = _net()
    kept: list = []
    seen, probe = _probe(net._module[4], kept)
    with hooked({str(i): net._module[i] for i in range(5)}) as captured:
        with net.trace(X):
            for i in range(5):
                kept.append(net[i].output.save())
    probe.remove()
    assert seen == [0]  # the forward ran to its end before the first read returned
    assert all(kept[i] is captured[str(i)] for i in range(5))
    assert_clean(net._module)


def test_reads_in_any_order_and_results_stay_the_same():
    net = _net()
    given: list = []
    pre = net._module[2].register_forward_pre_hook(lambda m, args: given.append(args[0]))
    with hooked({"0": net._module[0], "4": net._module[4]}) as captured, torch.no_grad():
        with net.trace(X) as tracer:
            last = net[4].output.save()
            first = net[0].output[:, :2].save()
            middle = net[2].input.save()
            rows = net.output[1:].save()
    pre.remove()
    assert last is captured["4"]
    assert middle is given[0]
    assert torch.equal(first, captured["0"][:, :2])
    assert torch.equal(rows, captured["4"][1:])
    assert tracer.result is captured["4"]


def test_a_body_that_computes_still_reads_values_before_later_in_place_edits():
    net = _net()  # net[1] is ReLU(inplace=True): it overwrites net[0]'s output
    copies: list = []
    copier = net._module[0].register_forward_hook(lambda m, a, out: copies.append(out.clone()))
    with torch.no_grad(), net.trace(X):
        before = net[0].output.clone().save()
        after = net[4].output.save()
    copier.remove()
    assert (copies[0] < 0).any()  # the plain hook's copy, taken before the ReLU ran
    assert torch.equal(before, copies[0])
    assert after.shape == (3, 2)


def test_a_value_read_by_reference_shows_later_in_place_edits_like_a_plain_hook():
    net = _net()
    with hooked({"0": net._module[0]}) as captured, torch.no_grad(), net.trace(X):
        kept = net[0].output.save()
    assert kept is captured["0"]
    assert (kept >= 0).all()  # the ReLU ran in place on the very tensor, as with any hook


class _Recorder:
    """Not a list: its ``append`` could do anything, so the body keeps pausing."""

    def __init__(self) -> None:
        self.items: list = []

    def append(self, value) -> None:
        self.items.append(value)

    def __len__(self) -> int:
        return len(self.items)


def test_appending_to_something_other_than_a_list_keeps_each_pause():
    net = _net()
    kept = _Recorder()
    seen, probe = _probe(net._module[4], kept)
    with torch.no_grad(), net.trace(X):
        for i in range(5):
            kept.append(net[i].output.save())
    probe.remove()
    assert seen == [4]  # the forward waited at each read


def test_a_shadowed_builtin_keeps_each_pause():
    net = _net()
    kept: list = []

    def range(n):  # shadows the builtin: the point of the test
        return [0, 1, 2, 3, 4][:n]

    seen, probe = _probe(net._module[4], kept)
    with torch.no_grad(), net.trace(X):
        for i in range(5):
            kept.append(net[i].output.save())
    probe.remove()
    assert seen == [4]


def test_reads_through_an_object_the_check_cannot_see_into_still_work(tiny_llama):
    standard = tiny_llama.layers_output  # indexing it reads a value: passive only for envoys
    layer = layers_of(tiny_llama._model)[1]
    with hooked({"1": layer}) as captured, tiny_llama.trace("The Eiffel Tower is in"):
        h = standard[1]
    assert h is captured["1"]
    assert_clean(tiny_llama._model)


class _WithSpare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 4)
        self.spare = nn.Linear(4, 4)

    def forward(self, x):
        return self.used(x)


def test_a_passive_read_of_a_module_never_called_names_it():
    net = NNsight(_WithSpare())
    with pytest.raises(ModuleNotCalledError, match=r"model\.spare\.output was never produced"):
        with net.trace(X):
            net.used.output.save()
            net.spare.output.save()
    assert_clean(net._module)
    with net.trace(X):  # the model still traces
        used = net.used.output.save()
    assert used.shape == (3, 4)


def test_persistent_edits_still_apply_under_a_passive_body():
    net = _net()
    with net.edit() as edited:
        edited[2].output[:] = 0
    with torch.no_grad(), edited.trace(X):
        middle = edited[2].output.save()
        out = edited[4].output.save()
    assert torch.equal(middle, torch.zeros(3, 8))
    assert torch.equal(out, net._module[4].bias.detach().expand(3, 2))


def test_saving_every_layer_of_smollm2_equals_hidden_states(smollm2):
    prompt = "The Eiffel Tower is located in the city of"
    layers = layers_of(smollm2._model)
    kept: list = []
    seen, probe = _probe(layers[-1], kept)
    try:
        with torch.no_grad(), smollm2.trace(prompt):
            for i in range(len(layers)):
                kept.append(smollm2.model.layers[i].output.save())
    finally:
        probe.remove()
    assert seen == [0]
    with torch.no_grad():
        inputs = smollm2.tokenizer(prompt, return_tensors="pt")
        hidden = smollm2._model(**inputs, output_hidden_states=True).hidden_states
    for i in range(len(layers) - 1):  # the last hidden state is after the final norm
        torch.testing.assert_close(kept[i], hidden[i + 1], rtol=0, atol=0)
    assert_clean(smollm2._model)


class _Where(nn.Module):
    """Records the greenlet each call runs on, and can raise from inside the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.ran_on: list = []
        self.interrupt = False

    def forward(self, x):
        from greenlet import getcurrent

        self.ran_on.append(getcurrent())
        if self.interrupt:
            raise KeyboardInterrupt
        return self.inner(x)


def test_a_passive_trace_runs_its_forward_as_a_plain_call_and_a_pausing_one_does_not():
    from greenlet import getcurrent

    net = NNsight(_Where())
    with torch.no_grad(), net.trace(X):
        kept = net.inner.output.save()
    with torch.no_grad(), net.trace(X):
        doubled = (net.inner.output * 2).save()  # uses the value: pauses the forward
    assert net._module.ran_on[0] is getcurrent()
    assert net._module.ran_on[1] is not getcurrent()
    assert torch.equal(doubled, kept * 2)
    assert_clean(net._module)


def test_ctrl_c_inside_a_passive_forward_leaves_the_model_clean():
    net = NNsight(_Where())
    net._module.interrupt = True
    with pytest.raises(KeyboardInterrupt), torch.no_grad(), net.trace(X):
        net.inner.output.save()
    assert_clean(net._module)
    net._module.interrupt = False
    with hooked({"inner": net._module.inner}) as captured, torch.no_grad(), net.trace(X):
        kept = net.inner.output.save()
    assert kept is captured["inner"]


def test_save_outside_a_trace_says_where_it_works_and_the_class_stays_walkable():
    net = _net()
    with net.trace(X):
        kept = net[4].output.save()
    with pytest.raises(AttributeError, match=r"inside `with model.trace\(...\)` only"):
        kept.save()
    for name in dir(torch.Tensor):  # what torch.compile does when it lists tensor methods
        getattr(torch.Tensor, name)
    assert torch.Tensor.backward.__module__.startswith("torch")
