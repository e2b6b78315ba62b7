"""``module.source``: call sites inside a forward, against ground truth computed by hand.

The truth never goes through lenslab: q, k, v and the attention probabilities recomputed from
each model's own weights and the attention's inputs (caught with a plain torch pre-hook), the
MLP's inner activation from its weights, and edits made with plain torch hooks.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from lenslab import (
    LensError,
    ModulePathError,
    OutOfOrderError,
    SkippedModuleError,
    SourceUnavailableError,
)
from lenslab.engine.operations import call_site_names

from ..conftest import TINY_KINDS, assert_clean, hooked, make_tiny

PROMPT = "The Eiffel Tower is located in the city of"
HEAD = 1


@pytest.fixture(scope="module", params=TINY_KINDS)
def arch(request, tokenizer):
    """(kind, a tiny model of that layout with eager attention, so probabilities exist)."""
    return request.param, make_tiny(request.param, tokenizer, attention="eager")


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    return make_tiny("gpt2", tokenizer)


def parts(model, layer=0):
    block = model.layers[layer]
    return getattr(block, model._layout.attention), getattr(block, model._layout.mlp)


def encode(model, prompt=PROMPT):
    return model.tokenizer(prompt, return_tensors="pt")


@contextmanager
def inputs_of(*modules):
    """Plain torch pre-hooks: each module's first (args, kwargs)."""
    seen: dict[int, tuple] = {}
    handles = []
    for i, module in enumerate(modules):

        def hook(mod, args, kwargs, i=i):
            seen.setdefault(i, (args, kwargs))

        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def first_input(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def rotate(x, cos, sin):
    """Rotary embedding by hand (GPT-NeoX rotates only the first ``cos.shape[-1]`` dims)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    r = cos.shape[-1]
    x_rot, x_pass = x[..., :r], x[..., r:]
    half = r // 2
    turned = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    return torch.cat((x_rot * cos + turned * sin, x_pass), dim=-1)


def qkv_from_weights(kind, attn, args, kwargs):
    """Queries, keys and values (batch, heads, seq, head_dim) from the module's weights."""
    h = first_input(args, kwargs)
    b, s, _ = h.shape
    if kind == "gpt2":
        qkv = h @ attn.c_attn.weight + attn.c_attn.bias  # Conv1D: x W + b
        return tuple(
            t.view(b, s, -1, attn.head_dim).transpose(1, 2)
            for t in qkv.split(attn.split_size, dim=2)
        )
    if kind == "gpt_neox":
        hd = attn.head_size
        fused = F.linear(h, attn.query_key_value.weight, attn.query_key_value.bias)
        q, k, v = fused.view(b, s, -1, 3 * hd).transpose(1, 2).chunk(3, dim=-1)
    else:
        hd = attn.head_dim
        q, k, v = (
            F.linear(h, p.weight, p.bias).view(b, s, -1, hd).transpose(1, 2)
            for p in (attn.q_proj, attn.k_proj, attn.v_proj)
        )
    cos, sin = kwargs["position_embeddings"]
    return rotate(q, cos, sin), rotate(k, cos, sin), v


def probabilities(q, k, scaling):
    """softmax(q k^T * scaling) under a causal mask, key heads shared by query groups."""
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = q @ k.transpose(-1, -2) * scaling
    n = q.shape[-2]
    return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)


def mixed(probs, v):
    """The attention's output before its projection: (batch, seq, heads, head_dim)."""
    v = v.repeat_interleave(probs.shape[1] // v.shape[1], dim=1)
    return (probs @ v).transpose(1, 2)


ACTIVATION = {
    "gpt2": lambda x: F.gelu(x, approximate="tanh"),  # gelu_new
    "gpt_neox": F.gelu,
    "gemma": lambda x: F.gelu(x, approximate="tanh"),  # gelu_pytorch_tanh
}
INNER = {"gpt2": "self_act_0", "gpt_neox": "self_act_0"}  # the MLP's activation call
OUT_PROJECTION = {"gpt2": "c_proj", "gpt_neox": "dense"}


def mlp_inner_from_weights(kind, mlp, x):
    if kind == "gpt2":
        pre = x @ mlp.c_fc.weight + mlp.c_fc.bias
    elif kind == "gpt_neox":
        pre = F.linear(x, mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias)
    else:
        pre = F.linear(x, mlp.gate_proj.weight)
    return ACTIVATION.get(kind, F.silu)(pre)


# -- every layout, against the weights -------------------------------------------------------


@torch.no_grad()
def test_attention_values_and_probabilities_from_the_weights(arch):
    kind, model = arch
    attn, _ = parts(model)
    with inputs_of(attn._module) as seen:
        model._model(**encode(model))
    args, kwargs = seen[0]
    q, k, v = qkv_from_weights(kind, attn._module, args, kwargs)
    probs = probabilities(q, k, attn._module.scaling)

    with model.trace(PROMPT):
        interface = attn.source.attention_interface_0
        given = interface.inputs.save()
        softmax = interface.source.nn_functional_softmax_0.output.save()  # before it returns
        result = interface.output.save()
    (_, q_in, k_in, v_in, *_), _ = given
    for got, want in ((q_in, q), (k_in, k), (v_in, v)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(softmax, probs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result[0], mixed(probs, v), rtol=1e-5, atol=1e-5)
    assert "forward" not in attn._module.__dict__
    assert_clean(model._model)


@torch.no_grad()
def test_the_mlp_inner_activation_from_the_weights(arch):
    kind, model = arch
    _, mlp = parts(model)
    with inputs_of(mlp._module) as seen:
        model._model(**encode(model))
    want = mlp_inner_from_weights(kind, mlp._module, first_input(*seen[0]))
    with model.trace(PROMPT):
        inner = mlp.source[INNER.get(kind, "self_act_fn_0")].output.save()
    torch.testing.assert_close(inner, want, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_head_ablation_matches_zeroing_the_projection_input_with_a_torch_hook(arch):
    kind, model = arch
    attn, _ = parts(model)
    module = attn._module
    width = module.head_size if kind == "gpt_neox" else module.head_dim
    projection = getattr(module, OUT_PROJECTION.get(kind, "o_proj"))

    def zero_head(mod, args):
        x = args[0].clone()
        x[..., HEAD * width : (HEAD + 1) * width] = 0
        return (x,)

    handle = projection.register_forward_pre_hook(zero_head)
    try:
        want = model._model(**encode(model)).logits
    finally:
        handle.remove()
    with model.trace(PROMPT):
        attn.source.attention_interface_0.output[0][:, :, HEAD] = 0
        logits = model.output.logits.save()
    assert torch.equal(logits, want)
    plain = model._model(**encode(model)).logits
    assert not torch.equal(plain, want)  # the edit changed something, and did not stay


def test_printing_shows_the_forward_with_every_call_site_named(arch):
    kind, model = arch
    attn, mlp = parts(model)
    shown = repr(attn.source)
    names = call_site_names(attn)
    assert names == list(attn.source) == call_site_names(attn._module)
    assert "attention_interface_0" in names
    for name in names:
        assert name in shown
    line = next(text for text in shown.splitlines() if "attention_interface_0" in text)
    assert "attention_interface(" in line  # the name sits on the line of its call
    one = repr(attn.source.attention_interface_0)
    assert "-->" in one and "attention_interface(" in one
    assert INNER.get(kind, "self_act_fn_0") in call_site_names(mlp)


@torch.no_grad()
def test_smollm2_attention_probabilities_from_q_and_k_and_the_weights(smollm2):
    """The real model, with its default (sdpa) attention: the probabilities are never
    materialized, so they come from q and k read at the call, which the weights confirm."""
    attn = smollm2.model.layers[3].self_attn
    with inputs_of(attn._module) as seen:
        smollm2._model(**encode(smollm2))
    q, k, v = qkv_from_weights("llama", attn._module, *seen[0])
    with smollm2.trace(PROMPT):
        (_, q_in, k_in, v_in, *_), _ = attn.source.attention_interface_0.inputs
        probs = probabilities(q_in, k_in, attn._module.scaling).save()
        result = attn.source.attention_interface_0.output[0].save()
        projected = attn.source.self_o_proj_0.output.save()
        out = attn.output[0].save()
    for got, want in ((q_in, q), (k_in, k), (v_in, v)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(probs, probabilities(q, k, attn._module.scaling))
    torch.testing.assert_close(result, mixed(probs, v), rtol=1e-4, atol=1e-5)
    assert torch.equal(projected, out)
    assert_clean(smollm2._model)


# -- the trace machinery, on GPT-2 --------------------------------------------------------------


@torch.no_grad()
def test_each_invoke_sees_and_edits_its_own_rows(gpt2):
    attn = gpt2.transformer.h[0].attn
    prompts = ["The cat sat on the", "Hello there, how are"]  # as many tokens: no padding
    batch = gpt2.tokenizer(prompts, return_tensors="pt")
    assert batch["attention_mask"].all()
    with hooked({"c": attn._module.c_proj}) as truth:
        gpt2._model(**batch)
    with gpt2.trace() as tracer:
        with tracer.invoke(prompts[0]):
            first = attn.source.self_c_proj_0.output.save()
        with tracer.invoke(prompts[1]):
            second = attn.source.self_c_proj_0.output.save()
            attn.source.self_c_proj_0.output = torch.zeros_like(second)
            edited = gpt2.transformer.h[0].attn.output[0].save()
    assert torch.equal(first, truth["c"][:1]) and torch.equal(second, truth["c"][1:])
    assert torch.equal(edited, torch.zeros_like(edited))


@torch.no_grad()
def test_generation_steps_read_each_steps_call(gpt2):
    attn = gpt2.transformer.h[1].attn
    calls = []
    handle = attn._module.c_proj.register_forward_hook(lambda m, a, o: calls.append(o))
    try:
        ids = encode(gpt2)
        gpt2._model.generate(**ids, max_new_tokens=3, do_sample=False)
    finally:
        handle.remove()
    with gpt2.generate(PROMPT, max_new_tokens=3, do_sample=False) as tracer:
        seen = [].save()
        for _ in tracer.iter[:]:
            seen.append(attn.source.self_c_proj_0.output)
    assert len(seen) == 3
    for got, want in zip(seen, calls):
        assert torch.equal(got, want)
    assert_clean(gpt2._model)


@torch.no_grad()
def test_an_edit_at_every_step_matches_a_torch_hook(gpt2):
    mlp = gpt2.transformer.h[1].mlp

    def halve(module, args, output):
        return output / 2

    handle = mlp._module.act.register_forward_hook(halve)
    try:
        want = gpt2._model.generate(**encode(gpt2), max_new_tokens=4, do_sample=False)
    finally:
        handle.remove()
    with gpt2.generate(PROMPT, max_new_tokens=4, do_sample=False) as tracer:
        for _ in tracer.iter[:]:
            mlp.source.self_act_0.output = mlp.source.self_act_0.output / 2
        tokens = tracer.result.save()
    assert torch.equal(tokens, want)


@torch.no_grad()
def test_model_edit_keeps_a_call_site_edit_for_later_traces(tokenizer):
    model = make_tiny("gpt2", tokenizer)
    proj = model._model.transformer.h[0].attn.c_proj
    handle = proj.register_forward_hook(lambda m, a, o: o * 0)
    try:
        want = model._model(**encode(model)).logits
    finally:
        handle.remove()
    with model.edit() as edited:
        edited.transformer.h[0].attn.source.self_c_proj_0.output[:] = 0
    with edited.trace(PROMPT):
        logits = edited.output.logits.save()
    with model.trace(PROMPT):
        plain = model.output.logits.save()
    assert torch.equal(logits, want)
    assert torch.equal(plain, model._model(**encode(model)).logits)
    assert "forward" not in model._model.transformer.h[0].attn.__dict__


def test_a_scan_gives_shapes_without_compute(gpt2):
    attn = gpt2.transformer.h[0].attn
    with torch.no_grad(), gpt2.trace(PROMPT):
        real = attn.source.attention_interface_0.output[0].save()
    with gpt2.scan(PROMPT):
        shape = attn.source.attention_interface_0.output[0].shape
    assert tuple(shape) == tuple(real.shape)
    assert "forward" not in attn._module.__dict__


@torch.no_grad()
def test_reads_in_any_order_and_a_late_edit_raises_at_the_users_line(gpt2):
    h = gpt2.transformer.h
    with hooked({"a": h[0].attn._module.c_proj, "b": h[1].attn._module.c_proj}) as truth:
        gpt2._model(**encode(gpt2))
    with gpt2.trace(PROMPT):
        later = h[1].attn.source.self_c_proj_0.output.save()
        earlier = h[0].attn.source.self_c_proj_0.output.save()
    assert torch.equal(later, truth["b"]) and torch.equal(earlier, truth["a"])
    with pytest.raises(OutOfOrderError, match="self_c_proj_0") as caught, gpt2.trace(PROMPT):
        h[1].output.save()
        h[0].attn.source.self_c_proj_0.output = torch.zeros(1)
    assert any(str(entry.path) == __file__ for entry in caught.traceback)
    assert "forward" not in h[0].attn._module.__dict__


@torch.no_grad()
def test_setting_a_calls_input_matches_a_torch_pre_hook(gpt2):
    attn = gpt2.transformer.h[0].attn

    def zero(mod, args):
        return (torch.zeros_like(args[0]),)

    handle = attn._module.c_proj.register_forward_pre_hook(zero)
    try:
        want = gpt2._model(**encode(gpt2)).logits
    finally:
        handle.remove()
    with gpt2.trace(PROMPT):
        x = attn.source.self_c_proj_0.input
        attn.source.self_c_proj_0.input = torch.zeros_like(x)
        logits = gpt2.output.logits.save()
    assert torch.equal(logits, want)


@torch.no_grad()
def test_skip_of_a_module_next_to_a_call_site_read(gpt2):
    h = gpt2.transformer.h
    with hooked({"c": h[0].attn._module.c_proj}) as truth:
        gpt2._model(**encode(gpt2))
    with gpt2.trace(PROMPT):
        read = h[0].attn.source.self_c_proj_0.output.save()
        h[1].mlp.skip(torch.zeros_like(h[1].ln_2.output))
        logits = gpt2.output.logits.save()
    original = h[1]._module.mlp.forward
    h[1]._module.mlp.forward = torch.zeros_like
    try:
        want = gpt2._model(**encode(gpt2)).logits
    finally:
        del h[1]._module.mlp.forward
    assert torch.equal(read, truth["c"]) and torch.equal(logits, want)
    assert h[1]._module.mlp.forward == original
    assert "forward" not in h[0].attn._module.__dict__


def test_a_call_inside_a_skipped_module_is_a_clear_error_at_its_line(gpt2):
    """As for a skipped module's submodules: its calls do not run for the skipping invoke,
    whether the skip comes before the call started or while it is starting (after .input)."""
    attn = gpt2.transformer.h[0].attn
    shape = (*encode(gpt2)["input_ids"].shape, gpt2._model.config.n_embd)
    replacement = (torch.zeros(shape), None)
    with pytest.raises(SkippedModuleError, match="skipped the module around it"):
        with gpt2.trace(PROMPT):
            assert attn.input.shape == shape  # the call has started: it runs, rows replaced
            attn.skip(replacement)
            attn.source.self_c_proj_0.output.save()
    assert_clean(gpt2._model)
    with pytest.raises(SkippedModuleError, match="skipped the module around it"):
        with gpt2.trace(PROMPT):
            attn.skip(replacement)
            attn.source.self_c_proj_0.output.save()
    assert "forward" not in attn._module.__dict__
    assert_clean(gpt2._model)


# -- the forward is put back, and costs nothing when unused ------------------------------------


def test_the_original_forward_is_back_after_an_error_and_an_interrupt(gpt2):
    attn = gpt2.transformer.h[0].attn
    with pytest.raises(ValueError, match="boom"), gpt2.trace(PROMPT):
        attn.source.self_c_proj_0.output.save()
        raise ValueError("boom")
    assert "forward" not in attn._module.__dict__
    with pytest.raises(KeyboardInterrupt), gpt2.trace(PROMPT):
        attn.source.self_c_proj_0.output.save()
        raise KeyboardInterrupt
    assert "forward" not in attn._module.__dict__
    with pytest.raises(KeyboardInterrupt), gpt2.trace(PROMPT):
        attn.source.self_c_proj_0.output.save()
        assert "forward" in attn._module.__dict__  # installed while the trace uses it
        gpt2.transformer.h[2].output.save()
        raise KeyboardInterrupt
    assert "forward" not in attn._module.__dict__
    assert_clean(gpt2._model)
    with torch.no_grad(), gpt2.trace(PROMPT):
        out = attn.output[0].save()
    with torch.no_grad(), hooked({"a": attn._module}) as truth:
        gpt2._model(**encode(gpt2))
    assert torch.equal(out, truth["a"][0])


def test_a_trace_without_source_never_runs_the_rewritten_forward(gpt2):
    attn = gpt2.transformer.h[0].attn
    print(attn.source)  # built: nothing is installed by looking
    with torch.no_grad(), gpt2.trace(PROMPT):
        attn.output.save()
        during = dict(attn._module.__dict__)
    assert "forward" not in during


def test_two_threads_one_with_source_one_without_are_both_exact(tokenizer):
    model = make_tiny("gpt2", tokenizer, seed=5)
    attn = model.transformer.h[0].attn
    ids = encode(model)
    with torch.no_grad():
        plain = model._model(**ids).logits
        handle = attn._module.c_proj.register_forward_hook(lambda m, a, o: o * 0)
        try:
            zeroed = model._model(**ids).logits
        finally:
            handle.remove()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def with_source():
        start.wait()
        for _ in range(15):
            with torch.no_grad(), model.trace(PROMPT):
                attn.source.self_c_proj_0.output[:] = 0
                logits = model.output.logits.save()
            if not torch.equal(logits, zeroed):
                errors.append(AssertionError("the .source trace differs"))

    def without():
        start.wait()
        for _ in range(15):
            with torch.no_grad(), model.trace(PROMPT):
                logits = model.output.logits.save()
            if not torch.equal(logits, plain):
                errors.append(AssertionError("the plain trace differs"))

    threads = [threading.Thread(target=with_source), threading.Thread(target=without)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert "forward" not in attn._module.__dict__
    assert_clean(model._model)


# -- bad input ---------------------------------------------------------------------------------


def test_a_wrong_name_lists_the_real_ones_with_a_close_match(gpt2):
    attn = gpt2.transformer.h[0].attn
    with pytest.raises(ModulePathError, match="self_c_proj_0") as caught:
        attn.source.self_c_prj_0  # noqa: B018
    message = str(caught.value)
    assert "Did you mean self_c_proj_0" in message and "attention_interface_0" in message
    assert isinstance(caught.value, AttributeError)  # nnsight code catching that still works
    with pytest.raises(ModulePathError, match="Did you mean"), gpt2.trace(PROMPT):
        attn.source.atention_interface_0.output.save()
    assert "forward" not in attn._module.__dict__


def test_a_forward_without_python_source_is_a_clear_error():
    class Builtin(torch.nn.Module):
        forward = torch.relu  # a C function

    namespace: dict = {}
    exec(  # a class whose source linecache cannot find
        "import torch\nclass NoFile(torch.nn.Module):\n    def forward(self, x):\n"
        "        return torch.relu(x)\n",
        namespace,
    )
    from lenslab import NNsight

    for module in (Builtin(), namespace["NoFile"]()):
        wrapped = NNsight(torch.nn.Sequential(module))
        with pytest.raises(SourceUnavailableError, match=r"model\[0\]\.source") as caught:
            wrapped[0].source  # noqa: B018
        assert isinstance(caught.value, LensError)
        with pytest.raises(SourceUnavailableError):
            call_site_names(module)


def test_recursive_source_of_a_module_call_points_to_the_modules_own_source(gpt2):
    attn = gpt2.transformer.h[0].attn
    with pytest.raises(LensError, match=r"use that module's own \.source"), gpt2.trace(PROMPT):
        attn.source.self_c_proj_0.source  # noqa: B018
    with pytest.raises(LensError, match="must be reached before the call"), gpt2.trace(PROMPT):
        attn.source.self_c_proj_0.output.save()
        attn.source.attention_interface_0.source  # noqa: B018
    with pytest.raises(OutOfOrderError, match="already ran past"), gpt2.trace(PROMPT):
        attn.source.attention_interface_0.output.save()  # watched from the start: kept
        attn.source.attention_interface_0.source  # noqa: B018
    assert "forward" not in attn._module.__dict__
    assert_clean(gpt2._model)


# -- .skip of a call site ----------------------------------------------------------------------


@torch.no_grad()
def test_skipping_a_call_does_not_make_it_and_uses_the_value(gpt2):
    attn = gpt2.transformer.h[0].attn
    proj = attn._module.c_proj
    calls = []
    counter = proj.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with gpt2.trace(PROMPT):
            x = attn.source.self_c_proj_0.input
            attn.source.self_c_proj_0.skip(x * 3)
            out = attn.output[0].save()
            logits = gpt2.output.logits.save()
    finally:
        counter.remove()
    assert calls == []  # the call was never made
    assert torch.equal(out, x * 3)  # resid_dropout is the identity in eval mode
    replaced = proj.register_forward_hook(lambda m, a, o: a[0] * 3)
    try:
        want = gpt2._model(**encode(gpt2)).logits
    finally:
        replaced.remove()
    assert torch.equal(logits, want)


@torch.no_grad()
def test_one_invoke_skips_a_call_the_other_still_gets_it(gpt2):
    attn = gpt2.transformer.h[0].attn
    prompts = ["The cat sat on the", "Hello there, how are"]
    with hooked({"c": attn._module.c_proj}) as truth:
        gpt2._model(**gpt2.tokenizer(prompts, return_tensors="pt"))
    with gpt2.trace() as tracer:
        with tracer.invoke(prompts[0]):
            x = attn.source.self_c_proj_0.input
            attn.source.self_c_proj_0.skip(torch.zeros_like(x))
            skipped = attn.source.self_c_proj_0.output.save()
        with tracer.invoke(prompts[1]):
            kept = attn.source.self_c_proj_0.output.save()
    assert torch.equal(skipped, torch.zeros_like(skipped))
    assert torch.equal(kept, truth["c"][1:])


def test_a_late_skip_of_a_call_raises(gpt2):
    attn = gpt2.transformer.h[0].attn
    with pytest.raises(OutOfOrderError, match="cannot skip"), gpt2.trace(PROMPT):
        out = attn.source.self_c_proj_0.output
        attn.source.self_c_proj_0.skip(out)
    assert "forward" not in attn._module.__dict__


@torch.no_grad()
def test_recursive_source_at_every_generation_step(gpt2):
    attn = gpt2.transformer.h[0].attn
    calls = []
    handle = attn._module.c_proj.register_forward_pre_hook(lambda m, a: calls.append(a[0]))
    try:
        gpt2._model.generate(**encode(gpt2), max_new_tokens=3, do_sample=False)
    finally:
        handle.remove()
    with gpt2.generate(PROMPT, max_new_tokens=3, do_sample=False) as tracer:
        seen = [].save()
        for _ in tracer.iter[:]:
            inner = attn.source.attention_interface_0.source
            seen.append(inner.torch_nn_functional_scaled_dot_product_attention_0.output)
    assert len(seen) == 3
    for fused, before_projection in zip(seen, calls):
        assert torch.equal(fused.transpose(1, 2).flatten(2), before_projection)
    assert_clean(gpt2._model)


@torch.no_grad()
def test_a_module_behind_accelerates_hook_gets_its_forward_back(tokenizer):
    from accelerate.hooks import ModelHook, add_hook_to_module

    model = make_tiny("gpt2", tokenizer, seed=2)
    module = model._model.transformer.h[0].attn
    add_hook_to_module(module, ModelHook())
    wrapper, old = module.__dict__["forward"], module.__dict__["_old_forward"]
    with hooked({"c": module.c_proj}) as truth:
        model._model(**encode(model))
    with model.trace(PROMPT):
        read = model.transformer.h[0].attn.source.self_c_proj_0.output.save()
        assert module.__dict__["forward"] is wrapper  # accelerate's own wrapper stays
        assert module.__dict__["_old_forward"] is not old
    assert torch.equal(read, truth["c"])
    assert module.__dict__["forward"] is wrapper and module.__dict__["_old_forward"] is old
