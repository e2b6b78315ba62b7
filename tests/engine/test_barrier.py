"""``tracer.barrier(n)``: every participating invoke reaches it before any goes on.

Ground truth for values is plain Hugging Face runs with forward hooks; the order test records
what each body did, in the order it did it.
"""

from __future__ import annotations

import pytest
import torch

from lenslab import BarrierError

from ..conftest import assert_clean, hooked, layers_of

A, B = "The cat sat on the mat", "The dog ran in the park"  # the same number of tokens


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def model(request):
    return request.getfixturevalue(request.param)


def blocks(model):
    return model.transformer.h if hasattr(model._model, "transformer") else model.model.layers


def plain_patch(model, layer):
    """B's logits with block ``layer``'s last position taken from A's run (two plain passes)."""
    module = layers_of(model._model)[layer]
    tok = model.tokenizer
    with torch.no_grad():
        with hooked({"h": module}) as got:
            model._model(**tok(A, return_tensors="pt"))
        source = got["h"][0] if isinstance(got["h"], tuple) else got["h"]

        def patch(output):
            hidden = output[0] if isinstance(output, tuple) else output
            hidden = hidden.clone()
            hidden[:, -1] = source[:, -1]
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        with hooked({"h": module}, edit={"h": patch}):
            return model._model(**tok(B, return_tensors="pt")).logits


def patched(model, layer, with_barrier):
    block = blocks(model)[layer]
    with torch.no_grad(), model.trace() as tracer:
        barrier = tracer.barrier(2)
        with tracer.invoke(A):
            h = block.output
            if with_barrier:
                barrier()
        with tracer.invoke(B):
            if with_barrier:
                barrier()
            out = block.output
            hidden = out[0] if isinstance(out, tuple) else out
            source = h[0] if isinstance(h, tuple) else h
            hidden[:, -1] = source[:, -1]
            logits = model.output.logits.save()
    return logits


def test_cross_invoke_patching_is_the_same_with_and_without_a_barrier(model):
    expected = plain_patch(model, 1)
    torch.testing.assert_close(patched(model, 1, with_barrier=True), expected)
    torch.testing.assert_close(patched(model, 1, with_barrier=False), expected)
    assert_clean(model._model)


def test_no_invoke_goes_past_the_barrier_before_all_reach_it(model):
    block = blocks(model)[0]
    done = []
    with torch.no_grad(), model.trace() as tracer:
        barrier = tracer.barrier(3)
        with tracer.invoke(A):
            _ = block.output
            done.append("a before")
            barrier()
            done.append("a after")
        with tracer.invoke(B):
            done.append("b before")
            barrier()
            done.append("b after")
        with tracer.invoke(A):
            _ = block.output
            done.append("c before")
            barrier()
            done.append("c after")
    assert sorted(done[:3]) == ["a before", "b before", "c before"]  # all arrive, then
    assert done[3:] == ["a after", "b after", "c after"]  # all go on, in invoke order


def test_barrier_in_generation_shares_embeddings_as_nnsight_documents(model):
    gpt2 = hasattr(model._model, "transformer")
    embed = model.transformer.wte if gpt2 else model.model.embed_tokens
    with torch.no_grad():
        with model.generate(max_new_tokens=3, do_sample=False) as tracer:
            barrier = tracer.barrier(2)
            with tracer.invoke(A):
                embeddings = embed.output
                barrier()
                first = model.generator.output.save()
            with tracer.invoke(B):
                barrier()
                embed.output = embeddings
                second = model.generator.output.save()
        plain = model._model.generate(
            **model.tokenizer(A, return_tensors="pt"), max_new_tokens=3, do_sample=False
        )
    n = plain.shape[1]
    assert torch.equal(first[:, -n:], plain)
    assert torch.equal(second[:, -3:], plain[:, -3:])  # B continued from A's embeddings


def test_a_barrier_fewer_invokes_reach_is_an_error_not_a_hang(model):
    block = blocks(model)[0]
    with pytest.raises(BarrierError, match=r"barrier\(3\) can never be passed"):
        with model.trace() as tracer:
            barrier = tracer.barrier(3)
            with tracer.invoke(A):
                barrier()
            with tracer.invoke(B):
                barrier()
    with pytest.raises(BarrierError, match=r"reached by only 1 invoke"):
        with model.trace() as tracer:
            barrier = tracer.barrier(2)
            with tracer.invoke(A):
                _ = block.output
                barrier()
            with tracer.invoke(B):
                block.output.save()
    with pytest.raises(BarrierError, match="positive int"):
        with model.trace(A) as tracer:
            tracer.barrier(0)
    assert_clean(model._model)
    with torch.no_grad(), model.trace(A):
        logits = model.output.logits.save()
    with torch.no_grad():
        expected = model._model(**model.tokenizer(A, return_tensors="pt")).logits
    torch.testing.assert_close(logits, expected)
