"""Traces on accelerate-offloaded SmolLM2 (most layers on disk) against in-memory ground truth.

Ground truth never goes through lenslab: the session's in-memory SmolLM2 (its plain HF module)
and the same checkpoint loaded offloaded by plain ``from_pretrained``, both read and edited with
plain torch hooks. Offloading moves weights, not arithmetic, so values must be equal exactly.
"""

from __future__ import annotations

import pytest
import torch

from lenslab import EditError, LanguageModel
from lenslab.models import smollm2 as bundled

from ..conftest import assert_clean, hooked

PROMPT = "The Eiffel Tower is in"
OTHER = "The Colosseum is in"  # as many tokens as PROMPT: a batch without padding
OFFLOAD = {"device_map": "auto", "max_memory": {"cpu": "150MB"}}


@pytest.fixture(scope="module")
def path():
    return str(bundled.ensure_converted(progress=False))


@pytest.fixture(scope="module")
def offloaded(path, tmp_path_factory):
    """Loaded lazily (the default), as a new user would; weights load on the first trace."""
    folder = tmp_path_factory.mktemp("offload")
    model = LanguageModel(path, offload_folder=str(folder), **OFFLOAD)
    assert not model.dispatched
    yield model
    assert_clean(model._model)


@pytest.fixture(scope="module")
def plain_offloaded(path, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("plain")
    return AutoModelForCausalLM.from_pretrained(path, offload_folder=str(folder), **OFFLOAD).eval()


def ids(model, *prompts):
    return model.tokenizer(list(prompts) or [PROMPT], return_tensors="pt").input_ids


def run(hf, input_ids, layers=(), edit=None):
    """Plain forward with torch hooks: (logits, {layer index: output})."""
    modules = {i: hf.model.layers[i] for i in layers}
    with hooked(modules, edit) as captured, torch.no_grad():
        logits = hf(input_ids).logits
    return logits, captured


def on_disk(model) -> list[str]:
    return [name for name, place in model._model.hf_device_map.items() if place == "disk"]


def test_most_layers_really_are_on_disk(offloaded):
    with offloaded.trace(PROMPT):
        pass
    assert offloaded.dispatched
    assert len([n for n in on_disk(offloaded) if ".layers." in n]) >= 25
    assert offloaded.model.layers[20]._module.self_attn.q_proj.weight.device.type == "meta"


def test_trace_values_equal_in_memory_and_plain_offload(offloaded, plain_offloaded, smollm2):
    with offloaded.trace(PROMPT):
        hidden = [offloaded.model.layers[i].output.save() for i in (0, 15, 29)]
        logits = offloaded.output.logits.save()
    for truth in (smollm2._model, plain_offloaded):
        expected_logits, captured = run(truth, ids(smollm2), (0, 15, 29))
        assert torch.equal(logits, expected_logits)
        for value, i in zip(hidden, (0, 15, 29), strict=True):
            assert torch.equal(value, captured[i])
    assert offloaded.tokenizer.decode(logits[0, -1].argmax()) == " Paris"
    assert logits.device == offloaded.device == torch.device("cpu")


def test_in_place_and_setter_edits(offloaded, smollm2):
    vector = torch.randn(576, generator=torch.Generator().manual_seed(0)) * 4
    with offloaded.trace(PROMPT):
        offloaded.model.layers[3].output[:] += vector
        offloaded.model.layers[20].output = offloaded.model.layers[20].output * 0.5
        logits = offloaded.output.logits.save()
    edits = {3: lambda out: out + vector, 20: lambda out: out * 0.5}
    expected, _ = run(smollm2._model, ids(smollm2), (3, 20), edits)
    assert torch.equal(logits, expected)
    assert not torch.equal(logits, run(smollm2._model, ids(smollm2))[0])


def test_invokes_batch_and_edit_one_prompt(offloaded, smollm2):
    assert ids(smollm2).shape == ids(smollm2, OTHER).shape
    with offloaded.trace() as tracer:
        with tracer.invoke(PROMPT):
            first = offloaded.model.layers[10].output.save()
        with tracer.invoke(OTHER):
            offloaded.model.layers[10].output[:] = 0
            second = offloaded.output.logits.save()

    def zero_second(out):
        out = out.clone()
        out[1] = 0
        return out

    logits, captured = run(smollm2._model, ids(smollm2, PROMPT, OTHER), (10,), {10: zero_second})
    assert torch.equal(first, captured[10][:1])
    assert torch.equal(second, logits[1:])


def test_persistent_edit(offloaded, smollm2):
    with offloaded.edit() as edited:
        offloaded.model.layers[12].mlp.output[:] = 0
    with edited.trace(PROMPT):
        logits = edited.output.logits.save()
    mlp = {"mlp": smollm2._model.model.layers[12].mlp}
    with hooked(mlp, {"mlp": torch.zeros_like}), torch.no_grad():
        expected = smollm2._model(ids(smollm2)).logits
    assert torch.equal(logits, expected)


def test_generation_with_a_step_loop(offloaded, smollm2):
    vector = torch.randn(576, generator=torch.Generator().manual_seed(1)) * 4
    with offloaded.generate(PROMPT, max_new_tokens=3, do_sample=False) as tracer:
        for _ in tracer.all():
            offloaded.model.layers[8].output[:] += vector
    handle = smollm2._model.model.layers[8].register_forward_hook(lambda m, a, o: o + vector)
    try:
        expected = smollm2._model.generate(ids(smollm2), max_new_tokens=3, do_sample=False)
    finally:
        handle.remove()
    assert torch.equal(tracer.result, expected)


def test_gradients_through_offloaded_layers(offloaded, smollm2):
    target = smollm2.tokenizer.encode(" Paris")[0]
    with offloaded.trace(PROMPT):
        hidden = offloaded.model.layers[4].output.save()
        hidden.retain_grad()
        (-offloaded.output.logits[0, -1, target]).backward()
    captured = {}
    block = smollm2._model.model.layers[4]
    handle = block.register_forward_hook(lambda m, a, o: captured.__setitem__("h", o))
    try:
        loss = -smollm2._model(ids(smollm2)).logits[0, -1, target]
    finally:
        handle.remove()
    (expected,) = torch.autograd.grad(loss, [captured["h"]])
    assert torch.equal(hidden.grad, expected)
    smollm2._model.zero_grad(set_to_none=True)
    offloaded._model.zero_grad(set_to_none=True)


def test_cache(offloaded, smollm2):
    with offloaded.trace(PROMPT) as tracer:
        cache = tracer.cache([offloaded.model.layers[2], offloaded.model.layers[27]])
    _, captured = run(smollm2._model, ids(smollm2), (2, 27))
    assert torch.equal(cache["model.model.layers[2]"].output, captured[2])
    assert torch.equal(cache["model.model.layers[27]"].output, captured[27])


def test_scan_leaves_the_offload_working(offloaded, smollm2):
    weight = offloaded.model.layers[20]._module.mlp.up_proj.weight
    with offloaded.scan(PROMPT):
        shape = offloaded.model.layers[20].output.shape
    assert tuple(shape) == (1, ids(smollm2).shape[1], 576)
    after = offloaded.model.layers[20]._module.mlp.up_proj.weight
    assert after is weight and after.device.type == "meta"
    assert all(hook.offload for _, hook in _offloading(offloaded))
    with offloaded.trace(PROMPT):
        logits = offloaded.output.logits.save()
    assert torch.equal(logits, run(smollm2._model, ids(smollm2))[0])


def _offloading(model):
    from lenslab.engine.offload import offloading_hooks

    return offloading_hooks(model._model)


def test_setting_a_value_on_another_device_names_both(offloaded):
    with pytest.raises(EditError, match=r"meta.*cpu"):
        with offloaded.trace(PROMPT):
            offloaded.model.layers[3].output = offloaded.model.layers[3].output.to("meta")


def _plain_transformers_can_run(path, device_map, folder):
    """Skip where transformers itself cannot run ``device_map`` (seen with transformers 5.4: a
    tied ``lm_head`` on disk is a KeyError in accelerate's loader): not lenslab's to fix."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(path, device_map=device_map, offload_folder=folder)
    try:
        with torch.no_grad():
            plain(torch.tensor([[1, 2, 3]]))
    except KeyError as error:
        pytest.skip(f"plain transformers cannot run this device_map either: KeyError {error}")


def test_explicit_device_map_dispatched(path, tmp_path, smollm2):
    """Embeddings on disk too: inputs must go to the execution device, not to ``meta``."""
    layers = {f"model.layers.{i}": "cpu" if i < 2 else "disk" for i in range(30)}
    device_map = {
        "model.embed_tokens": "disk",
        **layers,
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "disk",
    }
    _plain_transformers_can_run(path, device_map, tmp_path / "plain")
    model = LanguageModel(path, device_map=device_map, offload_folder=str(tmp_path), dispatch=True)
    assert model.device == torch.device("cpu")
    with model.trace(PROMPT):
        hidden = model.model.layers[1].output.save()
        logits = model.output.logits.save()
    expected, captured = run(smollm2._model, ids(smollm2), (1,))
    assert torch.equal(hidden, captured[1])
    assert torch.equal(logits, expected)


def test_reading_an_offloaded_weight_gives_the_real_tensor(offloaded, smollm2):
    """Its module holds ``meta``; the user's read comes from the offload, ready to compute with."""
    assert offloaded.model.layers[20]._module.mlp.up_proj.weight.device.type == "meta"
    weight = offloaded.model.layers[20].mlp.up_proj.weight
    assert weight.device == offloaded.device
    assert torch.equal(weight, smollm2._model.model.layers[20].mlp.up_proj.weight)
    direction = offloaded.model.layers[25].mlp.down_proj.weight[:, 7]
    with offloaded.trace(PROMPT):
        offloaded.model.layers[6].output.add_(direction)
        logits = offloaded.output.logits.save()
    steer = smollm2._model.model.layers[25].mlp.down_proj.weight[:, 7].detach()
    expected, _ = run(smollm2._model, ids(smollm2), (6,), {6: lambda out: out + steer})
    assert torch.equal(logits, expected)
    assert offloaded.model.layers[20]._module.mlp.up_proj.weight.device.type == "meta"


def test_skip_an_offloaded_layer(offloaded, smollm2):
    """The skipped layer's weights are never loaded, and later layers see the given value."""
    with offloaded.trace(PROMPT):
        before = offloaded.model.layers[14].output
        offloaded.model.layers[15].skip(before)
        skipped = offloaded.model.layers[15].output.save()
        logits = offloaded.output.logits.save()
    layers = smollm2._model.model.layers
    handle = layers[15].register_forward_hook(lambda m, args, out: args[0])
    try:
        with torch.no_grad():
            expected = smollm2._model(ids(smollm2)).logits
    finally:
        handle.remove()
    _, captured = run(smollm2._model, ids(smollm2), (14,))
    assert torch.equal(skipped, captured[14])
    assert torch.equal(logits, expected)
    assert_clean(offloaded._model)
