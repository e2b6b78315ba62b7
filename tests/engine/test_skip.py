"""``module.skip(value)``: the module's forward does not run and ``value`` is its output.

Ground truth never goes through lenslab: the plain Hugging Face module with the skipped
module's ``forward`` replaced by hand (an instance attribute returning the value), and plain
forward hooks to capture values and to count whether a submodule ran.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from lenslab import EditError, OutOfOrderError, SkippedModuleError

from ..conftest import assert_clean, layers_of

PROMPTS = ["The Eiffel Tower is located in the city of", "Hello there", "One two three"]


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def model(request):
    return request.getfixturevalue(request.param)


def parts(model, i):
    """(norm before the MLP, the MLP, a submodule inside the MLP) of block i, as torch modules."""
    block = layers_of(model._model)[i]
    if hasattr(block, "ln_2"):
        return block.ln_2, block.mlp, block.mlp.c_fc
    return block.post_attention_layernorm, block.mlp, block.mlp.gate_proj


def envoys(model, i):
    if hasattr(model._model, "transformer"):
        block = model.transformer.h[i]
        return block.ln_2, block.mlp, block.mlp.c_fc
    block = model.model.layers[i]
    return block.post_attention_layernorm, block.mlp, block.mlp.gate_proj


@contextmanager
def replaced(module, make):
    """Plain torch: ``module``'s forward replaced by ``make(input)``; yields its call count."""
    calls = []

    def forward(x, *args, **kwargs):
        calls.append(x.shape[0])
        return make(x)

    module.forward = forward
    try:
        yield calls
    finally:
        del module.forward


@contextmanager
def counting(module):
    """Plain torch forward pre-hook: how many times ``module`` ran."""
    calls = []
    handle = module.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def plain_logits(model, prompts, make=None, i=1):
    """Logits of ``prompts`` (one batch, left padded) with block i's MLP forward replaced."""
    _, mlp, _ = parts(model, i)
    batch = model.tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        if make is None:
            return model._model(**batch).logits
        with replaced(mlp, make):
            return model._model(**batch).logits


def assert_tail(actual, expected):
    """A left-padded row ends with what its prompt computes alone."""
    n = expected.shape[1]
    torch.testing.assert_close(actual[:, -n:], expected, rtol=1e-4, atol=1e-4)


def assert_no_skip_left(model):
    assert_clean(model._model)
    for module in model._model.modules():
        assert "forward" not in module.__dict__, f"{type(module).__name__} kept a forward"


# -- one invoke -------------------------------------------------------------------------------


def test_skip_with_zeros_matches_a_replaced_forward_and_the_module_never_runs(model):
    _, _, inner = parts(model, 1)
    norm, mlp, _ = envoys(model, 1)
    with counting(inner) as ran, torch.no_grad():
        with model.trace(PROMPTS[0]):
            mlp.skip(torch.zeros_like(norm.output))
            skipped_out = mlp.output.save()
            logits = model.output.logits.save()
    assert ran == []  # the MLP's forward did not run
    assert skipped_out.abs().max().item() == 0
    expected = plain_logits(model, [PROMPTS[0]], torch.zeros_like)
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, plain_logits(model, [PROMPTS[0]]))  # the skip mattered
    assert_no_skip_left(model)


def test_skip_with_the_modules_own_input_is_the_identity(model):
    norm, mlp, _ = envoys(model, 2)
    with torch.no_grad():
        with model.trace(PROMPTS[1]):
            mlp.skip(norm.output)  # the MLP's input, read before the MLP is called
            a = model.output.logits.save()
        with model.trace(PROMPTS[1]):
            mlp.skip(mlp.input)  # read at the MLP's own call: the output is replaced instead
            b = model.output.logits.save()
    expected = plain_logits(model, [PROMPTS[1]], lambda x: x, i=2)
    torch.testing.assert_close(a, expected)
    torch.testing.assert_close(b, expected)
    assert_no_skip_left(model)


# -- several invokes ----------------------------------------------------------------------------


def test_one_invoke_skips_its_rows_the_other_runs_normally(model):
    _, _, inner = parts(model, 1)
    norm, mlp, _ = envoys(model, 1)
    with counting(inner) as ran, torch.no_grad():
        with model.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                mlp.skip(torch.zeros_like(norm.output))
                first = model.output.logits.save()
            with tracer.invoke(PROMPTS[2]):
                second = model.output.logits.save()
    assert ran == [1]  # the others' rows need the module: it ran once, for the batch
    both = [PROMPTS[0], PROMPTS[2]]
    with torch.no_grad():
        batch = model.tokenizer(both, return_tensors="pt", padding=True)
        _, plain_mlp, _ = parts(model, 1)
        zero_first = []

        def zero_row0(m, args, output):
            zero_first.append(1)
            output = output.clone()
            output[0] = 0
            return output

        handle = plain_mlp.register_forward_hook(zero_row0)
        try:
            expected = model._model(**batch).logits
        finally:
            handle.remove()
    torch.testing.assert_close(first, expected[:1])  # the longest prompt: no padding
    assert_tail(second, plain_logits(model, [PROMPTS[2]]))  # as if run alone, unskipped
    assert_no_skip_left(model)


def test_every_invoke_skipping_means_the_module_does_not_run(model):
    _, _, inner = parts(model, 1)
    norm, mlp, _ = envoys(model, 1)
    with counting(inner) as ran, torch.no_grad():
        with model.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                mlp.skip(torch.zeros_like(norm.output))
                first = model.output.logits.save()
            with tracer.invoke(PROMPTS[2]):
                mlp.skip(norm.output)
                second = model.output.logits.save()
        with model.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                pass
            with tracer.invoke(PROMPTS[2]):
                pass
            with tracer.invoke():  # every row
                mlp.skip(torch.zeros_like(norm.output))
                every = model.output.logits.save()
    assert ran == []
    zeros = [plain_logits(model, [p], torch.zeros_like) for p in (PROMPTS[0], PROMPTS[2])]
    torch.testing.assert_close(first, zeros[0])
    assert_tail(second, plain_logits(model, [PROMPTS[2]], lambda x: x))
    torch.testing.assert_close(every[:1], zeros[0])
    assert_tail(every[1:], zeros[1])


# -- generation, model.edit() ----------------------------------------------------------------------


def test_skip_at_every_generation_step_matches_a_replaced_forward(model):
    norm, mlp, _ = envoys(model, 0)
    with torch.no_grad():
        with model.generate(PROMPTS[1], max_new_tokens=4, do_sample=False) as tracer:
            for _ in tracer.all():
                mlp.skip(torch.zeros_like(norm.output))
            ids = model.generator.output.save()
        _, plain_mlp, _ = parts(model, 0)
        batch = model.tokenizer([PROMPTS[1]], return_tensors="pt")
        with replaced(plain_mlp, torch.zeros_like) as calls:
            expected = model._model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert len(calls) == 4
    assert torch.equal(ids, expected)
    assert_no_skip_left(model)


def test_skip_in_model_edit_applies_to_every_trace_of_the_edited_model(model):
    norm, mlp, _ = envoys(model, 1)
    with model.edit() as edited:
        mlp.skip(torch.zeros_like(norm.output))
    with torch.no_grad():
        with edited.trace(PROMPTS[0]):
            logits = edited.output.logits.save()
        with model.trace(PROMPTS[0]):
            untouched = model.output.logits.save()
    torch.testing.assert_close(logits, plain_logits(model, [PROMPTS[0]], torch.zeros_like))
    torch.testing.assert_close(untouched, plain_logits(model, [PROMPTS[0]]))
    assert_no_skip_left(model)


# -- mistakes -------------------------------------------------------------------------------------


def test_reading_a_submodule_of_a_skipped_module_is_an_error_at_that_line(model):
    norm, mlp, inner = envoys(model, 1)
    with pytest.raises(SkippedModuleError, match=r"skip.*submodules do not run"):
        with model.trace(PROMPTS[0]):
            mlp.skip(torch.zeros_like(norm.output))
            inner.output.save()
    assert_no_skip_left(model)


def test_a_value_of_the_wrong_shape_is_an_edit_error(model):
    norm, mlp, _ = envoys(model, 1)
    with pytest.raises(EditError, match="batch row"):
        with model.trace(PROMPTS[0]):
            mlp.skip(torch.zeros(3, 2, 32))
    with pytest.raises(EditError, match="shape"):  # the module runs for the other invoke
        with model.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                mlp.skip(torch.zeros_like(norm.output)[..., :5])
            with tracer.invoke(PROMPTS[1]):
                pass
    with pytest.raises(EditError, match="tensor"):
        with model.trace(PROMPTS[0]):
            mlp.skip("nothing")
    assert_no_skip_left(model)
    with torch.no_grad(), model.trace(PROMPTS[0]):
        logits = model.output.logits.save()
    torch.testing.assert_close(logits, plain_logits(model, [PROMPTS[0]]))


def test_skipping_a_module_the_forward_passed_is_out_of_order(model):
    norm, mlp, _ = envoys(model, 0)
    later, _, _ = envoys(model, 2)
    with pytest.raises(OutOfOrderError, match="already ran past"):
        with model.trace(PROMPTS[0]):
            h = later.output
            mlp.skip(torch.zeros_like(h))
    with pytest.raises(OutOfOrderError, match="already ran past"):
        with model.trace(PROMPTS[0]):
            mlp.output.save()
            mlp.skip(torch.zeros_like(norm.output))
    assert_no_skip_left(model)


def test_a_wrong_last_dimension_is_an_edit_error_when_no_row_runs_the_module(model):
    norm, mlp, _ = envoys(model, 1)
    width = model.config.hidden_size
    with pytest.raises(EditError, match=rf"shape \[1, \d+, {width}\]"):
        with model.trace(PROMPTS[0]):  # one invoke: every row skips
            mlp.skip(torch.zeros_like(norm.output)[..., :5])
    with pytest.raises(EditError, match="shape"):  # every invoke skipping, one of them wrong
        with model.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                mlp.skip(torch.zeros_like(norm.output))
            with tracer.invoke(PROMPTS[1]):
                mlp.skip(torch.zeros_like(norm.output)[..., :-1])
    with pytest.raises(EditError, match="dtype"):
        with model.trace(PROMPTS[0]):
            mlp.skip(torch.zeros_like(norm.output, dtype=torch.float64))
    assert_no_skip_left(model)
    with torch.no_grad(), model.trace(PROMPTS[0]):
        logits = model.output.logits.save()
    torch.testing.assert_close(logits, plain_logits(model, [PROMPTS[0]]))


def test_skipping_a_whole_block_in_generation_leaves_the_kv_cache_intact(model):
    """The shape check runs the block (which writes its KV cache) on fake tensors: the real
    cache must come out untouched, so later steps match plain torch, where the block's first
    call (step 0) is replaced by the identity and later calls run."""
    block = layers_of(model._model)[1]
    inputs = model.tokenizer(PROMPTS[0], return_tensors="pt")
    real = block.forward
    calls = []

    def first_call_replaced(x, *args, **kwargs):
        calls.append(1)
        return x if len(calls) == 1 else real(x, *args, **kwargs)

    block.forward = first_call_replaced
    try:
        with torch.no_grad():
            expected = model._model.generate(**inputs, max_new_tokens=4, do_sample=False)
    finally:
        del block.forward
    blocks = model.transformer.h if hasattr(model._model, "transformer") else model.model.layers
    with torch.no_grad(), model.generate(PROMPTS[0], max_new_tokens=4) as tracer:
        blocks[1].skip(blocks[0].output)  # step 0 only; before block 1's call: it never runs
    assert torch.equal(tracer.result, expected)
    assert_no_skip_left(model)
