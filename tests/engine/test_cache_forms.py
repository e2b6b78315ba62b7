"""``tracer.cache(...)`` in nnsight's form, against plain torch forward hooks.

Keys in both spellings, attribute access, include_output / include_inputs, device / dtype,
per-invoke rows, one entry per generation step, names passed back to ``modules=``.
"""

from __future__ import annotations

import pytest
import torch

from lenslab import CacheKeyError, InputError, ModulePathError

from ..conftest import assert_clean, hooked, layers_of

PROMPT = "The Eiffel Tower is located in the city of"
LAYOUTS = ["tiny_gpt2", "tiny_llama"]


@pytest.fixture(params=LAYOUTS)
def model(request):
    return request.getfixturevalue(request.param)


def layers_path(model) -> str:
    """The blocks' torch path: ``transformer.h`` (GPT-2) or ``model.layers`` (Llama)."""
    return "transformer.h" if hasattr(model._model, "transformer") else "model.layers"


def layer_envoys(model):
    return model.transformer.h if hasattr(model._model, "transformer") else model.model.layers


def ids(model, prompt=PROMPT):
    return model.tokenizer(prompt, return_tensors="pt").input_ids


def test_keys_in_both_forms_attribute_access_and_inputs(model):
    hf = model._model
    blocks = layers_of(hf)
    with hooked({"0": blocks[0], "1": blocks[1], "head": hf.lm_head}) as truth:
        with torch.no_grad():
            hf(ids(model))
    with model.trace(PROMPT) as tracer:
        cache = tracer.cache(include_inputs=True)
    path = layers_path(model)
    dotted, bracket = f"model.{path}.0", f"model.{path}[0]"
    assert torch.equal(cache[dotted].output, truth["0"])
    assert cache[dotted] is cache[bracket]
    assert dotted in cache and bracket in cache and "model.lm_head" in cache
    assert torch.equal(cache["model.lm_head"].output, truth["head"])
    view = cache.model
    for part in path.split("."):
        view = getattr(view, part)
    assert torch.equal(view[0].output, truth["0"])
    assert torch.equal(view["1"].output, truth["1"])
    assert torch.equal(cache[f"model.{path}.1"].inputs[0][0], truth["0"])
    assert torch.equal(cache[f"model.{path}.1"].input, truth["0"])
    # Every module that ran has exactly one entry; containers never called have none.
    modules = dict(hf.named_modules())
    with hooked(modules) as ran, torch.no_grad():
        hf(ids(model))
    assert len(cache) == len(ran) < len(modules)
    assert_clean(hf)


def test_chosen_modules_names_round_trip_and_transforms(model):
    blocks = layer_envoys(model)
    path = layers_path(model)
    with model.trace(PROMPT) as tracer:
        everything = tracer.cache()
    names = list(everything)
    with model.trace(PROMPT) as tracer:  # every name the cache lists can be passed back
        again = tracer.cache(modules=names)
    assert list(again) == names
    chosen = [blocks[0], f"model.{path}.1", f"model.{path}[2]", "lm_head"]
    with model.trace(PROMPT) as tracer:
        some = tracer.cache(modules=chosen, dtype=torch.float16, device="cpu")
        inputs_only = tracer.cache(modules=[blocks[1]], include_inputs=True, include_output=False)
    assert list(some) == [blocks[0]._name, blocks[1]._name, blocks[2]._name, "model.lm_head"]
    with hooked({"1": layers_of(model._model)[1]}) as truth, torch.no_grad():
        model._model(ids(model))
    assert some[blocks[1]._name].output.dtype == torch.float16
    torch.testing.assert_close(some[blocks[1]._name].output, truth["1"].half())
    assert inputs_only[blocks[1]._name].output is None
    assert inputs_only[blocks[1]._name].inputs is not None


def test_cache_sees_edits_and_model_edit(model):
    blocks = layer_envoys(model)
    with model.trace(PROMPT) as tracer:
        cache = tracer.cache(modules=[blocks[0].mlp, blocks[1]])
        blocks[0].mlp.output[:] = 0
    assert torch.count_nonzero(cache[blocks[0].mlp._name].output) == 0
    with model.edit() as edited:
        blocks[0].mlp.output[:] = 0
    with edited.trace(PROMPT) as tracer:
        in_edit = tracer.cache(modules=[blocks[1]._name])
    hf_blocks = layers_of(model._model)
    with (
        hooked(
            {"mlp": hf_blocks[0].mlp, "1": hf_blocks[1]}, edit={"mlp": torch.zeros_like}
        ) as truth,
        torch.no_grad(),
    ):
        model._model(ids(model))
    torch.testing.assert_close(in_edit[blocks[1]._name].output, truth["1"])
    torch.testing.assert_close(cache[blocks[1]._name].output, truth["1"])


def test_batched_trace_and_a_cache_made_inside_one_invoke(model):
    first, second = ids(model, "The cat sat on the mat"), ids(model, "A dog ran in the park")
    assert first.shape == second.shape  # same length: no padding, rows compare exactly
    blocks = layer_envoys(model)
    with model.trace() as tracer:
        whole = tracer.cache(modules=[blocks[1]])
        with tracer.invoke(input_ids=first):
            pass
        with tracer.invoke(input_ids=second):
            own = tracer.cache(modules=[blocks[1]])
    truth = []
    for prompt_ids in (first, second):
        with hooked({"1": layers_of(model._model)[1]}) as captured, torch.no_grad():
            model._model(prompt_ids)
        truth.append(captured["1"])
    torch.testing.assert_close(
        whole[blocks[1]._name].output, torch.cat(truth), atol=1e-5, rtol=1e-4
    )
    assert own[blocks[1]._name].output.shape[0] == 1
    torch.testing.assert_close(own[blocks[1]._name].output, truth[1], atol=1e-5, rtol=1e-4)


def test_generation_one_entry_per_step(model):
    hf = model._model
    blocks = layer_envoys(model)
    steps = 3
    outputs: list[torch.Tensor] = []
    handle = layers_of(hf)[0].register_forward_hook(lambda m, a, o: outputs.append(o))
    try:
        with torch.no_grad():
            expected = hf.generate(ids(model), max_new_tokens=steps, do_sample=False)
    finally:
        handle.remove()
    with model.generate(PROMPT, max_new_tokens=steps, do_sample=False) as tracer:
        cache = tracer.cache(modules=[blocks[0]])
    entries = cache[f"model.{layers_path(model)}.0"]
    assert torch.equal(tracer.result, expected)
    assert len(entries) == len(outputs) == steps
    for entry, truth in zip(entries, outputs):
        torch.testing.assert_close(entry.output, truth)
    assert entries.output is entries[0].output  # lenslab's older reading: step 0, and all steps
    assert len(entries.outputs) == steps


def test_bad_inputs_are_clear_and_leave_the_model_clean(model):
    path = layers_path(model)
    with pytest.raises(ModulePathError, match="names no module"):
        with model.trace(PROMPT) as tracer:
            tracer.cache(modules=["model.nonexistent.0"])
    with pytest.raises(InputError, match=r"torch\.dtype"):
        with model.trace(PROMPT) as tracer:
            tracer.cache(dtype="half")
    with pytest.raises(InputError, match="caches nothing"):
        with model.trace(PROMPT) as tracer:
            tracer.cache(include_output=False)
    with model.trace(PROMPT) as tracer:
        cache = tracer.cache(modules=[f"model.{path}.0"])
    with pytest.raises(KeyError):
        cache[f"model.{path}.1"]
    with pytest.raises(CacheKeyError, match="not in this cache"):
        cache["model.lm_head"]
    with pytest.raises(AttributeError):
        _ = cache.model.lm_head
    view = cache.model
    for part in path.split("."):
        view = getattr(view, part)
    with pytest.raises(IndexError):
        view[99]
    with pytest.raises(AttributeError):
        _ = view[0].mlp
    assert cache.get("model.lm_head") is None
    assert_clean(model._model)
