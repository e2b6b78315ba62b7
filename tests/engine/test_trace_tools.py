"""stop(), scan / validate, result, cache, persistent edits and sessions, against plain torch."""

from __future__ import annotations

import warnings

import pytest
import torch

from lenslab import EditError, LanguageModel, ScanValueError, TraceStateError

from ..conftest import assert_clean, hooked, make_tiny

PROMPT = "The Eiffel Tower is located in the city of"


def raw(model, prompt=PROMPT, **kwargs):
    with torch.no_grad():
        return model._model(**model.tokenizer(prompt, return_tensors="pt"), **kwargs)


def parameters_of(module):
    return {
        name: (type(p), p.device, p.dtype, p.detach().clone())
        for name, p in module.named_parameters()
    }


def assert_same_parameters(module, before):
    after = dict(module.named_parameters())
    assert after.keys() == before.keys()
    for name, (kind, device, dtype, data) in before.items():
        p = after[name]
        assert (type(p), p.device, p.dtype) == (kind, device, dtype), name
        assert torch.equal(p.detach(), data), name


# -- stop -------------------------------------------------------------------------------------


def test_stop_skips_later_modules_and_keeps_earlier_values(smollm2):
    layers = smollm2._model.model.layers
    with hooked({"late": layers[20], "head": smollm2._model.lm_head}) as calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with smollm2.trace(PROMPT) as tracer:
                hidden = smollm2.model.layers[5].output.save()
                tracer.stop()
                reached = True
    assert calls == {}  # neither module ran
    assert "reached" not in locals()
    expected = raw(smollm2, output_hidden_states=True).hidden_states[6]
    torch.testing.assert_close(hidden, expected)
    assert tracer.result is None
    assert_clean(smollm2._model)


def test_stop_outside_the_block_is_an_error(tiny_llama):
    with tiny_llama.trace(PROMPT) as tracer:
        pass
    with pytest.raises(TraceStateError, match="inside its with-block"):
        tracer.stop()


# -- scan and validate ----------------------------------------------------------------------


def test_scan_gives_real_shapes_without_compute_or_change(smollm2):
    before = parameters_of(smollm2._model)
    with smollm2.scan(PROMPT):
        hidden = smollm2.model.layers[4].output.save()
        attention = smollm2.model.layers[4].self_attn.output.save()
        logits = smollm2.output.logits.save()
    real = raw(smollm2, output_hidden_states=True)
    assert hidden.shape == real.hidden_states[5].shape and hidden.dtype == torch.float32
    assert attention[0].shape == real.hidden_states[5].shape
    assert logits.shape == real.logits.shape
    assert type(hidden).__name__ == "FakeTensor"
    assert_same_parameters(smollm2._model, before)
    assert_clean(smollm2._model)


def test_a_scan_line_that_needs_values_is_a_clear_error_at_that_line(tokenizer):
    """A scan has shapes, not values: an ``if`` on a tensor, ``.item()`` or a data-dependent op
    is a ScanValueError at the user's line (torch's own error names an aten op), in an inline
    body, an invoke and a body lenslab reruns for .save(); the model is left as it was."""
    import traceback

    model = make_tiny("gpt2", tokenizer)
    before = parameters_of(model._model)
    layer = model.transformer.h[0]
    with pytest.raises(ScanValueError, match="shapes but no values") as caught:
        with model.scan(PROMPT):
            if (layer.output > 0).all():  # the line the error names
                pass
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert last.filename == __file__ and "(layer.output > 0).all()" in last.line
    with pytest.raises(ScanValueError, match=r"line \d+: .*\.item\(\)"):
        with model.scan() as tracer:
            with tracer.invoke(PROMPT):
                layer.output.sum().item()
    with pytest.raises(ScanValueError, match="shapes but no values"):
        with model.scan(PROMPT):
            kept = list().save()  # a body lenslab reruns from its source
            kept.append(layer.output.nonzero())
    with model.scan(PROMPT):  # shapes still work
        if layer.output.shape[-1] > 1:
            width = layer.output.shape[-1]
    assert width == model._model.config.n_embd
    assert_same_parameters(model._model, before)
    assert_clean(model._model)


def test_scan_never_changes_an_accelerate_offloaded_model(tokenizer):
    """Seed 2 rule 4: a scan once left fake tensors in models dispatched through accelerate."""
    from accelerate import cpu_offload

    model = make_tiny("llama", tokenizer)
    expected = raw(model).logits
    cpu_offload(model._model, execution_device=torch.device("cpu"))
    before = dict(model._model.named_parameters())
    with model.scan(PROMPT):
        shape = model.model.layers[1].output.shape
    assert shape[-1] == 32
    after = dict(model._model.named_parameters())
    assert after.keys() == before.keys()
    for name, parameter in after.items():
        assert parameter is before[name], name
        assert type(parameter) is torch.nn.Parameter, name
    torch.testing.assert_close(raw(model).logits, expected)  # the offloaded weights are intact


def test_validate_reports_a_wrong_shape_edit_at_its_line_before_running(smollm2):
    with hooked({"embed": smollm2._model.model.embed_tokens}) as calls:
        with pytest.raises(EditError, match=r"line \d+: .*output\[:\] = torch.zeros\(1, 3, 576\)"):
            with smollm2.trace(PROMPT, validate=True):
                smollm2.model.layers[5].output[:] = torch.zeros(1, 3, 576)
        assert type(calls["embed"]).__name__ == "FakeTensor"  # no real forward ever ran
    with pytest.raises(EditError, match=r"shape \[1, 3, 576\].*\[1, 10, 576\]"):
        with smollm2.trace(PROMPT, validate=True):
            smollm2.model.layers[5].output = torch.zeros(1, 3, 576)
    assert_clean(smollm2._model)


def test_validated_trace_gives_the_plain_result(smollm2):
    with smollm2.trace(PROMPT, validate=True):
        smollm2.model.layers[5].output[:, -1] = 0
        validated = smollm2.output.logits.save()
    with smollm2.trace(PROMPT):
        smollm2.model.layers[5].output[:, -1] = 0
        plain = smollm2.output.logits.save()
    assert torch.equal(validated, plain)


# -- result and cache -------------------------------------------------------------------------


def test_result_is_the_model_output(smollm2):
    with smollm2.trace(PROMPT) as tracer:
        pass
    assert torch.equal(tracer.result.logits, raw(smollm2).logits)


def test_cache_records_every_module(smollm2):
    with smollm2.trace(PROMPT) as tracer:
        cache = tracer.cache(inputs=True)
    expected = raw(smollm2, output_hidden_states=True).hidden_states
    # Every module that runs has an entry (as in nnsight, a container never called has none).
    modules = dict(smollm2._model.named_modules())
    with hooked(modules) as ran:
        raw(smollm2)
    assert len(cache) == len(ran) == len(modules) - 1
    for i in (0, 14, 28):  # transformers' last hidden state is the normed one
        assert torch.equal(cache[f"model.model.layers[{i}]"].output, expected[i + 1])
        assert torch.equal(cache[f"model.model.layers[{i}]"].input, expected[i])
    assert torch.equal(cache["model.model.norm"].output, expected[-1])
    assert not cache["model.model.layers[3]"].output.requires_grad


def test_cache_of_chosen_modules_moved_and_cast(smollm2):
    with smollm2.trace(PROMPT) as tracer:
        cache = tracer.cache(
            [smollm2.model.layers[2], "model.layers.7.mlp"], device="cpu", dtype=torch.float16
        )
    assert list(cache) == ["model.model.layers[2]", "model.model.layers[7].mlp"]
    with hooked({"mlp": smollm2._model.model.layers[7].mlp}) as captured:
        raw(smollm2)
    assert cache["model.model.layers[7].mlp"].output.dtype == torch.float16
    torch.testing.assert_close(
        cache["model.model.layers[7].mlp"].output, captured["mlp"].half(), rtol=1e-3, atol=1e-3
    )


# -- persistent edits and sessions -------------------------------------------------------------


def zeroed_mlp_logits(model, layer):
    module = model._model.model.layers[layer].mlp
    with hooked({"mlp": module}, edit={"mlp": torch.zeros_like}):
        return raw(model).logits


def test_edit_applies_to_every_trace_of_the_copy_only(smollm2):
    plain = raw(smollm2).logits
    with smollm2.edit() as edited:
        smollm2.model.layers[3].mlp.output[:] = 0
    expected = zeroed_mlp_logits(smollm2, 3)
    for _ in range(2):
        with edited.trace(PROMPT):
            logits = edited.output.logits.save()
        torch.testing.assert_close(logits, expected)
    with smollm2.trace(PROMPT):
        untouched = smollm2.output.logits.save()
    assert torch.equal(untouched, plain)
    assert_clean(smollm2._model)


def test_edit_body_may_name_the_copy_it_makes(smollm2):
    with smollm2.edit() as edited:
        edited.model.layers[3].mlp.output[:] = 0
    with edited.trace(PROMPT):
        logits = edited.output.logits.save()
    torch.testing.assert_close(logits, zeroed_mlp_logits(smollm2, 3))
    assert_clean(smollm2._model)


def test_a_failing_edit_is_the_error_a_trace_raises(smollm2):
    with smollm2.edit() as edited:
        smollm2.model.layers[3].mlp.output[:] = undefined_steering  # noqa: F821
    with pytest.raises(NameError, match="undefined_steering"):
        with edited.trace(PROMPT):
            edited.output.logits.save()
    assert_clean(smollm2._model)
    with smollm2.trace(PROMPT):  # the model itself traces as before
        logits = smollm2.output.logits.save()
    assert torch.equal(logits, raw(smollm2).logits)


def test_inplace_edit_and_clear_edits(smollm2):
    plain = raw(smollm2).logits
    with smollm2.edit(inplace=True):
        smollm2.model.layers[3].mlp.output[:] = 0
    try:
        with smollm2.trace(PROMPT):
            edited = smollm2.output.logits.save()
        torch.testing.assert_close(edited, zeroed_mlp_logits(smollm2, 3))
    finally:
        smollm2.clear_edits()
    with smollm2.trace(PROMPT):
        cleared = smollm2.output.logits.save()
    assert torch.equal(cleared, plain)


def test_session_passes_values_between_traces(smollm2):
    with smollm2.session():
        with smollm2.trace("The Colosseum is located in the city of"):
            rome = smollm2.model.layers[26].output[:, -1].save()
        with smollm2.trace(PROMPT):
            smollm2.model.layers[26].output[:, -1] = rome
            patched = smollm2.output.logits[0, -1].save()
    assert smollm2.tokenizer.decode(patched.argmax()) == " Rome"


def test_lazy_model_scans_without_loading_weights():
    model = LanguageModel("smollm2")
    with model.scan(PROMPT):
        shape = model.model.layers[0].output.shape
    assert shape == (1, 10, 576)
    assert not model.dispatched


# -- the same tools on other layouts ------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_llama"])
def test_stop_scan_cache_and_edit_on_tiny_layouts(request, name):
    model = request.getfixturevalue(name)
    hf = model._model
    gpt2 = hasattr(hf, "transformer")
    layers = model.transformer.h if gpt2 else model.model.layers
    hf_layers = hf.transformer.h if gpt2 else hf.model.layers
    states = raw(model, output_hidden_states=True).hidden_states

    with hooked({"last": hf_layers[-1]}) as calls:
        with model.trace(PROMPT) as tracer:
            first = layers[0].output.save()
            tracer.stop()
    assert calls == {} and torch.equal(first, states[1])

    before = parameters_of(hf)
    with model.scan(PROMPT):
        shape = layers[1].output.shape
    assert shape == states[2].shape
    assert_same_parameters(hf, before)

    with model.trace(PROMPT) as tracer:
        cache = tracer.cache(layers)
    assert torch.equal(cache[layers[1]._name].output, states[2])

    with model.edit() as edited:
        layers[1].mlp.output[:] = 0
    with edited.trace(PROMPT):
        logits = edited.output.logits.save()
    with hooked({"mlp": hf_layers[1].mlp}, edit={"mlp": torch.zeros_like}):
        expected = raw(model).logits
    torch.testing.assert_close(logits, expected)
    assert_clean(hf)
