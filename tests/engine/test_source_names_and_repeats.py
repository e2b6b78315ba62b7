"""nnsight 0.8's ``.source`` names, and a module or call made several times in one forward.

nnsight 0.8 also numbers assignments, with calls and assignments sharing a counter per name, so
code written for it reads ``attention_interface_1`` where the documented form (and lenslab's
listing) says ``attention_interface_0``; ``benchmarks/source_names.py`` checks the numbering
against the installed nnsight 0.8. In one forward, ``tracer.iter[i]`` and ``.next()`` count a
module's calls, as nnsight's iteration does. Truth comes from plain torch hooks.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lenslab import (
    InputError,
    ModuleNotCalledError,
    ModulePathError,
    NNsight,
    OutOfOrderError,
    SourceUnavailableError,
)
from lenslab.engine import callsites

from ..conftest import TINY_KINDS, assert_clean, make_tiny

PROMPT = "The Eiffel Tower is located in the city of"
OUT_PROJECTION = {"gpt2": "c_proj", "gpt_neox": "dense"}


def pick(x):
    return torch.relu


def points(fn):
    """(documented name or None, nnsight 0.8 name or None) of each point, in order."""
    return [(None if s.assignment else s.name, s.nnsight08) for s in callsites.rewrite(fn).sites]


def test_assignments_are_points_that_share_the_counter_with_calls():
    def f(self, x):
        attention_interface = pick(x)
        h = attention_interface(x)
        a, b = h + 1, torch.relu(h)
        return a * b

    assert points(f) == [
        ("pick_0", "pick_0"),
        (None, "attention_interface_0"),
        ("attention_interface_0", "attention_interface_1"),
        (None, "h_0"),
        ("torch_relu_0", "torch_relu_0"),
        (None, "a_0"),
        (None, "b_0"),
    ]
    names = callsites.reachable(callsites.rewrite(f).sites)
    # Both names of the call reach it; 0.8's assignment ``attention_interface_0`` is shadowed.
    assert names["attention_interface_0"] is names["attention_interface_1"]
    assert not names["attention_interface_0"].assignment


def test_nnsight_08_runs_names_through_subscripts_and_calls_an_unnamed_callee_call():
    def f(self, x, fns):
        y = self.layers[0](x)
        z = fns[1](y)
        w = (lambda t: t)(z)
        out: torch.Tensor = super().forward(w)
        self.cache[0] = out
        first = second = out
        f()[0] = first
        return second

    assert points(f) == [
        ("unknown_0", "self_layers_0"),
        (None, "y_0"),
        ("unknown_1", "fns_0"),
        (None, "z_0"),
        ("unknown_2", "call_0"),
        (None, "w_0"),
        ("super_0", None),  # 0.8 leaves zero-argument super() alone
        ("forward_0", "forward_0"),
        (None, "out_0"),
        (None, "self_cache_0"),  # ``first = second = out`` binds two names: no point
        ("f_0", "f_0"),  # ``f()[0] = first``: nothing to name the target by
    ]


class Swap(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        a, b = self.lin(x), x * 2
        a, b = b, a  # each element is its own point, and the swap still swaps
        total: torch.Tensor = a - b
        return total


@torch.no_grad()
def test_the_rewritten_forward_with_assignment_points_computes_the_same():
    torch.manual_seed(0)
    module, x = Swap(), torch.randn(3, 4)
    want = module(x)
    model = NNsight(module)
    with model.trace(x):
        a1 = model.source.a_1.output.save()
        b1 = model.source.b_1.output.save()
        total = model.source.total_0.output.save()
        out = model.output.save()
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(a1, x * 2)
    torch.testing.assert_close(b1, module.lin(x))
    torch.testing.assert_close(total, want)
    assert "forward" not in module.__dict__


@pytest.fixture(scope="module", params=TINY_KINDS)
def arch(request, tokenizer):
    return request.param, make_tiny(request.param, tokenizer, attention="eager")


def attention_of(model, layer=0):
    return getattr(model.layers[layer], model._layout.attention)


@torch.no_grad()
def test_the_attention_call_under_nnsight_08s_name_is_what_the_projection_gets(arch):
    kind, model = arch
    attn = attention_of(model)
    projection = getattr(attn._module, OUT_PROJECTION.get(kind, "o_proj"))
    seen = []
    handle = projection.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        model._model(**model.tokenizer(PROMPT, return_tensors="pt"))
    finally:
        handle.remove()
    with model.trace(PROMPT):
        by_08 = attn.source.attention_interface_1.output[0].save()
        documented = attn.source.attention_interface_0.output[0].save()
    assert by_08 is documented or torch.equal(by_08, documented)
    torch.testing.assert_close(by_08.flatten(2), seen[0])
    assert "attention_interface_1" in attn.source
    assert "attention_interface_0 (0.8: attention_interface_1)" in repr(attn.source)
    assert_clean(model._model)


@pytest.fixture(scope="module")
def llama(tokenizer):
    return make_tiny("llama", tokenizer)


@torch.no_grad()
def test_an_assignment_point_reads_and_edits_what_the_forward_binds(llama):
    attn = attention_of(llama, 1)
    layer = llama.layers[1]._module
    encoded = llama.tokenizer(PROMPT, return_tensors="pt")
    kept = {}

    def zero_attention(mod, args, output):
        kept["attn"] = output[0]
        return (torch.zeros_like(output[0]), *output[1:])

    def keep_mid(mod, args, output):  # the residual after attention: layer input + attn out
        kept["norm_in"] = args[0]

    handle = attn._module.register_forward_hook(zero_attention)
    mid = layer.post_attention_layernorm.register_forward_hook(keep_mid)
    try:
        want = llama._model(**encoded).logits
    finally:
        handle.remove()
        mid.remove()
    with llama.trace(PROMPT):
        read = attn.source.attn_output_1.output.save()  # ``attn_output = self.o_proj(...)``
        attn.source.attn_output_1.output = torch.zeros_like(read)
        middle = llama.layers[1].source.hidden_states_1.output.save()  # residual + attention
        logits = llama.output.logits.save()
    torch.testing.assert_close(read, kept["attn"])
    torch.testing.assert_close(middle, kept["norm_in"])
    assert torch.equal(logits, want)
    assert not torch.equal(llama._model(**encoded).logits, want)  # the edit did not stay
    assert_clean(llama._model)


def test_each_invoke_edits_its_own_rows_of_an_assignment_point(llama):
    layer = llama.layers[0]
    with llama.trace() as tracer:
        with tracer.invoke(PROMPT):
            # ``residual = hidden_states`` binds the same tensor: replace it, not zero it in place
            residual = layer.source.residual_1.output
            layer.source.residual_1.output = torch.zeros_like(residual)
            edited = layer.output.save()
        with tracer.invoke(PROMPT):
            plain = layer.output.save()
            mlp_out = layer.source.self_mlp_0.output.save()
    torch.testing.assert_close(edited, mlp_out)  # ``residual + mlp``, the residual zeroed
    assert not torch.allclose(plain, edited)


def test_a_scan_gives_an_assignment_points_shape(llama):
    with llama.scan(PROMPT):
        shape = llama.layers[0].source.hidden_states_4.output.shape
    n = len(llama.tokenizer(PROMPT)["input_ids"])
    assert tuple(shape) == (1, n, llama._model.config.hidden_size)


def test_an_assignment_has_no_source_and_a_misspelt_08_name_gets_a_close_match(llama):
    attn = attention_of(llama)
    with pytest.raises(SourceUnavailableError, match="is an assignment"):
        with llama.trace(PROMPT):
            _ = attn.source.attn_output_0.source
    with pytest.raises(ModulePathError, match=r"Did you mean.*attn_output_1"):
        _ = attn.source.attn_outptu_1
    # Iteration and the sidebar list the documented call names only.
    assert "attn_output_0" not in list(attn.source)
    assert "attn_output_0" in attn.source and "attn_output_0" in dir(attn.source)
    assert_clean(llama._model)


def test_exec_code_asking_for_a_running_modules_source_gets_a_clear_error(llama):
    """A body with no code to read ahead cannot have a module's .source set up once that
    module's plain forward runs: an error at the line, naming the order that works."""
    late = (
        "with llama.trace(PROMPT):\n"
        "    inner = llama.layers[0].self_attn.output[0].save()\n"
        "    mid = llama.layers[0].source.hidden_states_1.output.save()\n"
    )
    with pytest.raises(OutOfOrderError, match=r"already inside model\.model\.layers\[0\]"):
        exec(compile(late, "<typed>", "exec"), {"llama": llama, "PROMPT": PROMPT})
    assert_clean(llama._model)
    early = (
        "with llama.trace(PROMPT):\n"
        "    mid = llama.layers[0].source.hidden_states_1.output.save()\n"
        "    normed_in = llama.layers[0].post_attention_layernorm.input.save()\n"
    )
    namespace = {"llama": llama, "PROMPT": PROMPT}
    exec(compile(early, "<typed>", "exec"), namespace)
    assert torch.equal(namespace["mid"], namespace["normed_in"])


class Recurrent(nn.Module):
    """One linear layer applied three times: a module called repeatedly in one forward."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        for _ in range(3):
            x = self.linear(x)
        return x


@pytest.fixture
def recurrent():
    torch.manual_seed(0)
    module = Recurrent()
    outputs = []
    handle = module.linear.register_forward_hook(lambda m, a, o: outputs.append(o))
    x = torch.randn(2, 4)
    with torch.no_grad():
        module(x)
    handle.remove()
    return NNsight(module), x, outputs


@torch.no_grad()
def test_in_one_forward_iter_and_next_count_a_modules_calls(recurrent):
    model, x, truth = recurrent
    with model.trace(x) as tracer:
        looped = list().save()
        for _ in tracer.iter[:3]:
            looped.append(model.linear.output)
        first = model.linear.output.save()  # outside the loop: call 0 again
    with model.trace(x):
        chained = [model.linear.output.save()]
        chained.append(model.linear.next().output.save())
        chained.append(model.linear.next().output.save())
    with model.trace(x) as tracer:
        sites = list().save()
        for _ in tracer.iter[[0, 2]]:
            sites.append(model.source.self_linear_0.output)
    for got in (looped, chained):
        assert len(got) == 3
        for value, want in zip(got, truth):
            assert torch.equal(value, want)
    assert torch.equal(first, truth[0])
    assert torch.equal(sites[0], truth[0]) and torch.equal(sites[1], truth[2])
    assert_clean(model._module)


@torch.no_grad()
def test_an_edit_of_one_call_feeds_the_next_and_a_missing_call_says_how_many_ran(recurrent):
    model, x, _ = recurrent
    with model.trace(x) as tracer:
        for _ in tracer.iter[1]:
            model.linear.output[:] = 0
        out = model.output.save()
    linear = model._module.linear
    torch.testing.assert_close(out, linear(torch.zeros(2, 4)))  # call 2 ran on zeros
    with pytest.raises(ModuleNotCalledError, match=r"call 3 .*ran 3 times"):
        with model.trace(x) as tracer:
            for _ in tracer.iter[3]:
                model.linear.output.save()
    assert_clean(model._module)
    with model.trace(x) as tracer:  # the cache lists each call, as nnsight's does
        cache = tracer.cache()
    entries = cache["model.linear"]
    assert len(entries) == 3
    assert torch.equal(entries[2].output, model._module(x))


@torch.no_grad()
def test_tracer_next_moves_the_body_a_step_on_in_a_generation(llama):
    head = llama._model.lm_head
    calls = []
    handle = head.register_forward_hook(lambda m, a, o: calls.append(o))
    try:
        ids = llama.tokenizer(PROMPT, return_tensors="pt")
        llama._model.generate(**ids, max_new_tokens=3, do_sample=False)
    finally:
        handle.remove()
    with llama.generate(PROMPT, max_new_tokens=3, do_sample=False) as tracer:
        first = llama.lm_head.output.save()
        tracer.next()
        second = llama.lm_head.output.save()
        tracer.next(1)
        third = llama.lm_head.output.save()
    for got, want in zip((first, second, third), calls):
        assert torch.equal(got, want)
    with pytest.raises(InputError, match="whole number of steps from 1"):
        with llama.generate(PROMPT, max_new_tokens=2) as tracer:
            tracer.next(0)
    assert_clean(llama._model)
