"""nnsight's other step-loop forms: ``with tracer.iter[...] as step:`` / ``with tracer.all():``,
``envoy(x, hook=True)``, and ``with loss.backward():`` outside any trace; against raw HF
``generate`` with plain forward hooks, direct module calls and ``torch.autograd.grad``."""

from __future__ import annotations

import pytest
import torch

from lenslab import InputError, TraceStateError

from ..conftest import assert_clean, hooked, layers_of

PROMPT = "The Eiffel Tower is located in the city of"
STEPS = 4
LAYOUTS = ["tiny_gpt2", "tiny_llama"]


@pytest.fixture(params=LAYOUTS)
def model(request):
    return request.getfixturevalue(request.param)


def blocks_of(model):
    return model.transformer.h if hasattr(model._model, "transformer") else model.model.layers


def two_prompts(model):
    """Two prompts of one length (no padding), as a (2, seq) batch of ids."""
    tok = model.tokenizer
    first, second = (
        tok(p, return_tensors="pt").input_ids for p in ("The cat sat on", "A dog ran in")
    )
    assert first.shape == second.shape
    return torch.cat([first, second])


def generate_with_hooks(model, ids, zero_mlp_of=None):
    """Raw HF generate; the lm_head output of every step; optionally zeroing one MLP's output."""
    hf = model._model
    heads: list[torch.Tensor] = []
    handles = [hf.lm_head.register_forward_hook(lambda m, a, o: heads.append(o))]
    if zero_mlp_of is not None:
        mlp = layers_of(hf)[zero_mlp_of].mlp
        handles.append(mlp.register_forward_hook(lambda m, a, o: torch.zeros_like(o)))
    try:
        with torch.no_grad():
            out = hf.generate(ids, max_new_tokens=STEPS, do_sample=False)
    finally:
        for handle in handles:
            handle.remove()
    return out, heads


# -- with tracer.iter[...] / with tracer.all() ---------------------------------------------------


def test_with_iter_runs_the_body_once_per_step_single_and_batched(model):
    for ids in (model.tokenizer(PROMPT, return_tensors="pt").input_ids, two_prompts(model)):
        _, heads = generate_with_hooks(model, ids)
        with model.generate(input_ids=ids, max_new_tokens=STEPS, do_sample=False) as tracer:
            seen = []
            with tracer.iter[1:3] as step:
                seen.append((step, model.lm_head.output))
                last = step
        assert [s for s, _ in seen] == [1, 2] and last == 2
        for step, value in seen:
            torch.testing.assert_close(value, heads[step])


def test_with_all_edits_every_step_like_a_hook(model):
    ids = two_prompts(model)
    expected, _ = generate_with_hooks(model, ids, zero_mlp_of=0)
    blocks = blocks_of(model)
    with model.generate(input_ids=ids, max_new_tokens=STEPS, do_sample=False) as tracer:
        with tracer.all():
            blocks[0].mlp.output[:] = 0
    assert torch.equal(tracer.result, expected)
    assert_clean(model._model)


def test_with_iter_inside_a_function_binds_its_names(model):
    ids = model.tokenizer(PROMPT, return_tensors="pt").input_ids
    _, heads = generate_with_hooks(model, ids)

    def last_head():
        with model.generate(input_ids=ids, max_new_tokens=STEPS, do_sample=False) as tracer:
            with tracer.iter[[0, 3]] as step:
                head = model.lm_head.output
        return step, head

    step, head = last_head()
    assert step == 3
    torch.testing.assert_close(head, heads[3])


def test_with_iter_mistakes_are_clear(model):
    with pytest.raises(TraceStateError, match="inside the with-block"):
        with model.generate(PROMPT, max_new_tokens=2) as tracer:
            pass
        with tracer.iter[0]:
            pass
    with pytest.raises(InputError, match="at most 2 steps"):
        with model.generate(PROMPT, max_new_tokens=2) as tracer:
            with tracer.iter[0:5]:
                model.lm_head.output.save()
    namespace = {"model": model}
    code = (
        "with model.generate('Hi', max_new_tokens=2) as tracer:\n"
        "    with tracer.all():\n"
        "        pass\n"
    )
    with pytest.raises(TraceStateError, match=r"for step in tracer\.iter"):
        exec(compile(code, "<no source>", "exec"), namespace)
    assert_clean(model._model)


# -- envoy(x, hook=True) ------------------------------------------------------------------------


def test_hooked_call_runs_the_models_edits_on_submodules(model):
    hf = model._model
    hf_block = layers_of(hf)[1]
    torch.manual_seed(0)
    x = torch.randn(2, 5, model.config.hidden_size)
    extra = {}  # a Llama block takes the rotary position embeddings from its caller
    if hasattr(hf, "model"):
        extra["position_embeddings"] = hf.model.rotary_emb(x, torch.arange(5)[None])
    with model.edit() as edited:
        blocks_of(edited)[1].mlp.output[:] = 0
        blocks_of(edited)[2].output[:] = 1  # names a module the call never reaches
    with hooked({"mlp": hf_block.mlp}, edit={"mlp": torch.zeros_like}), torch.no_grad():
        expected = hf_block(x, **extra)
    with torch.no_grad():
        plain_expected = hf_block(x, **extra)
    results = []
    with edited.trace() as tracer:  # batched, and called from inside an invoke
        with tracer.invoke(PROMPT):
            pass
        with tracer.invoke(PROMPT):
            results.append(blocks_of(edited)[1](x, hook=True, **extra))
            results.append(blocks_of(edited)[1](x, **extra))
    hooked_out, plain_out = (r[0] if isinstance(r, tuple) else r for r in results)
    expected = expected[0] if isinstance(expected, tuple) else expected
    plain_expected = plain_expected[0] if isinstance(plain_expected, tuple) else plain_expected
    assert not torch.allclose(expected, plain_expected)  # the edit matters
    torch.testing.assert_close(hooked_out, expected)
    torch.testing.assert_close(plain_out, plain_expected)
    with edited.trace(PROMPT):  # a single inline trace too
        inline = blocks_of(edited)[1](x, hook=True, **extra)
    inline = inline[0] if isinstance(inline, tuple) else inline
    torch.testing.assert_close(inline, expected)
    outside = blocks_of(edited)[1](x, hook=True, **extra)  # outside a trace: a plain call
    outside = outside[0] if isinstance(outside, tuple) else outside
    torch.testing.assert_close(outside, plain_expected)
    assert_clean(model._model)


# -- with loss.backward(): outside any trace ------------------------------------------------------


def test_standalone_backward_reads_and_edits_gradients(model):
    hf = model._model
    blocks = blocks_of(model)
    upstream = layers_of(hf)[0].mlp  # all its paths to the loss pass through block 1's output
    weight = next(upstream.parameters())
    for prompt in (PROMPT, ["The cat sat on", "A dog ran in"]):
        with model.trace(prompt):
            hidden = blocks[1].output.save()
            logits = model.output.logits.save()
        loss = logits[:, -1].logsumexp(-1).sum()
        grad, weight_grad = torch.autograd.grad(loss, [hidden, weight], retain_graph=True)
        hf.zero_grad(set_to_none=True)
        with loss.backward():
            seen = hidden.grad.clone().save()
            hidden.grad = hidden.grad * 2  # flows on upstream, doubled
        torch.testing.assert_close(seen, grad)
        torch.testing.assert_close(weight.grad, 2 * weight_grad)
        hf.zero_grad(set_to_none=True)
        assert_clean(hf)


def test_standalone_backward_mistakes_are_clear(model):
    with model.trace(PROMPT):
        logits = model.output.logits.save()
    with pytest.raises(InputError, match="needs a scalar"):
        with logits.backward():
            pass
    with torch.no_grad(), model.trace(PROMPT):
        frozen = model.output.logits.save()
    with pytest.raises(InputError, match="no gradient graph"):
        with frozen.sum().backward():
            pass
    model._model.zero_grad(set_to_none=True)
    assert_clean(model._model)
