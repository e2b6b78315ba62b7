"""Reading and editing module values, against plain forward hooks and output_hidden_states.

Runs on the tiny random GPT-2 / Llama / Mistral layouts and the real SmolLM2 (fixture ``lm``).
Every expected value comes from the Hugging Face module itself: ``register_forward_hook`` /
``register_forward_pre_hook`` captures and edits, ``output_hidden_states=True``, or direct
module calls; never from lenslab.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lenslab import EditError, NNsight

from ..conftest import assert_clean, hooked, layers_of

PROMPT = "The Eiffel Tower is located in the city of"


def tokens(model, prompt=PROMPT):
    return model.tokenizer(prompt, return_tensors="pt")


def raw_logits(model, edits=None, modules=None, prompt=PROMPT):
    """Logits of the plain HF forward, with ``edits`` applied by plain forward hooks."""
    with hooked(modules or {}, edit=edits), torch.no_grad():
        return model._model(**tokens(model, prompt)).logits


def parts(model):
    """The envoys and the real modules of a GPT-2 or Llama/Mistral layout, by role."""
    hf = model._model
    if hasattr(hf, "transformer"):
        base, real = model.transformer, hf.transformer
        return SimpleNamespace(
            embed=base.wte,
            layers=base.h,
            attn="attn",
            norm=base.ln_f,
            hf_embed=real.wte,
            hf_layers=real.h,
            hf_norm=real.ln_f,
        )
    base, real = model.model, hf.model
    return SimpleNamespace(
        embed=base.embed_tokens,
        layers=base.layers,
        attn="self_attn",
        norm=base.norm,
        hf_embed=real.embed_tokens,
        hf_layers=real.layers,
        hf_norm=real.norm,
    )


def captured_inputs(module, model, prompt=PROMPT):
    """(args, kwargs) ``module`` is called with in a plain forward, via a forward pre-hook."""
    seen = {}

    def pre(mod, args, kwargs):
        seen["args"], seen["kwargs"] = args, kwargs

    handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            model._model(**tokens(model, prompt))
    finally:
        handle.remove()
    return seen["args"], seen["kwargs"]


# -- reading ------------------------------------------------------------------------------------


def test_every_module_output_equals_a_plain_hook(lm):
    p = parts(lm)
    with lm.trace(PROMPT):
        embedded = p.embed.output.save()
        outputs, attn, mlp = [], None, None
        for i, layer in enumerate(p.layers):
            if i == 1:
                attn = getattr(layer, p.attn).output.save()
                mlp = layer.mlp.output.save()
            outputs.append(layer.output.save())
        normed = p.norm.output.save()
        head = lm.lm_head.output.save()
        logits = lm.output.logits.save()
    modules = {
        "embed": p.hf_embed,
        "attn": getattr(p.hf_layers[1], p.attn),
        "mlp": p.hf_layers[1].mlp,
        "norm": p.hf_norm,
        "head": lm._model.lm_head,
        **{f"layer{i}": layer for i, layer in enumerate(p.hf_layers)},
    }
    with hooked(modules) as truth, torch.no_grad():
        reference = lm._model(**tokens(lm)).logits
    assert torch.equal(embedded, truth["embed"])
    assert len(outputs) == len(p.hf_layers) == lm.config.num_hidden_layers
    for i, output in enumerate(outputs):
        assert isinstance(output, torch.Tensor)  # transformers 5: a block returns a tensor
        assert torch.equal(output, truth[f"layer{i}"]), i
    # attention returns a tuple (output, weights or None), exactly as the module did
    assert isinstance(attn, tuple) and len(attn) == len(truth["attn"]) == 2
    assert torch.equal(attn[0], truth["attn"][0])
    assert (attn[1] is None) == (truth["attn"][1] is None)
    assert torch.equal(mlp, truth["mlp"])
    assert torch.equal(normed, truth["norm"])
    assert torch.equal(head, truth["head"])
    assert torch.equal(logits, reference)
    assert_clean(lm._model)


def test_layer_outputs_equal_hidden_states(lm):
    p = parts(lm)
    n = len(p.layers)
    with lm.trace(PROMPT):
        embedded = p.embed.output.save()
        position = lm.transformer.wpe.output.save() if hasattr(lm._model, "transformer") else 0
        outputs = [p.layers[i].output.save() for i in range(n)]
    with torch.no_grad():
        states = lm._model(**tokens(lm), output_hidden_states=True).hidden_states
    assert len(states) == n + 1
    assert torch.equal(embedded + position, states[0])  # GPT-2 adds position embeddings
    for i in range(n - 1):  # the last hidden state is taken after the final norm
        assert torch.equal(outputs[i], states[i + 1]), i
        assert outputs[i].shape == (1, states[0].shape[1], lm.config.hidden_size)
    assert torch.equal(p.norm(outputs[-1]), states[-1])


def test_input_and_inputs_equal_a_pre_hook(lm):
    p = parts(lm)
    with lm.trace(PROMPT):
        before = p.layers[0].output.save()
        args, kwargs = p.layers[1].inputs
        first = p.layers[1].input.save()
        root_args, root_kwargs = lm.inputs
        root_first = lm.input.save()
    expected_args, expected_kwargs = captured_inputs(p.hf_layers[1], lm)
    assert isinstance(args, tuple) and len(args) == len(expected_args)
    assert torch.equal(args[0], expected_args[0])
    assert torch.equal(first, expected_args[0])
    assert torch.equal(first, before)  # what enters block 1 is what block 0 returned
    assert isinstance(kwargs, dict) and set(kwargs) == set(expected_kwargs)
    for name, value in expected_kwargs.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(kwargs[name], value), name
    # the root model is called with keywords only: .input is the first of them
    ids = tokens(lm)["input_ids"]
    assert root_args == () and torch.equal(root_kwargs["input_ids"], ids)
    assert torch.equal(root_first, ids)


def test_output_index_zero_is_batch_row_zero(smollm2):
    """transformers 5: a decoder layer returns a tensor, so [0] is the first batch row."""
    with smollm2.trace([PROMPT, "Hello there, my friend, how are"]):
        full = smollm2.model.layers[3].output.save()
        row = smollm2.model.layers[3].output[0].save()
    assert full.dim() == 3 and full.shape[0] == 2
    assert torch.equal(row, full[0])


def test_real_model_knows_paris(smollm2):
    with smollm2.trace(PROMPT):
        logits = smollm2.output.logits.save()
    assert smollm2.tokenizer.decode(logits[0, -1].argmax()) == " Paris"


def test_logit_lens_idiom_calls_modules_directly(lm):
    p = parts(lm)
    middle = len(p.layers) // 2
    with lm.trace(PROMPT):
        early = lm.lm_head(p.norm(p.layers[middle].output)).save()
        last = p.layers[-1].output
        lens = lm.lm_head(p.norm(last)).save()
        logits = lm.output.logits.save()
    torch.testing.assert_close(lens, logits)
    with torch.no_grad():
        states = lm._model(**tokens(lm), output_hidden_states=True).hidden_states
        expected = lm._model.lm_head(p.hf_norm(states[middle + 1]))
    torch.testing.assert_close(early, expected)
    assert not torch.allclose(early, logits)


def test_tracer_result_is_the_raw_forward_output(lm):
    with lm.trace(PROMPT) as tracer:
        seen = lm.output.save()
    with torch.no_grad():
        expected = lm._model(**tokens(lm))
    assert type(tracer.result) is type(expected)
    assert torch.equal(tracer.result.logits, expected.logits)
    assert torch.equal(seen.logits, expected.logits)


def test_values_are_real_tensors_and_save_returns_them(tiny):
    p = parts(tiny)
    with tiny.trace(PROMPT):
        hidden = p.layers[0].output
        saved = hidden.save()
        same = saved is hidden
        kind = type(hidden)
    assert same and kind is torch.Tensor
    assert isinstance(saved, torch.Tensor) and not hasattr(saved, "value")
    with hooked({"layer": p.hf_layers[0]}) as truth, torch.no_grad():
        tiny._model(**tokens(tiny))
    assert torch.equal(saved, truth["layer"])


def test_plain_python_inside_the_block(smollm2, capsys):
    def norm_of(t):
        return t.detach().norm().item()

    n_layers = len(smollm2.model.layers)
    with smollm2.trace(PROMPT):
        norms = []
        for layer in smollm2.model.layers[:4]:
            hidden = layer.output
            norms.append(norm_of(hidden))
            print("norm", round(norms[-1], 3))
            if hidden[0, -1].mean() > 1e9:
                raise AssertionError("values are real tensors, so this branch is decided here")
            else:
                branch = "real"
        count = len(norms)
        saved = [None] * n_layers
        for i in range(n_layers):
            saved[i] = smollm2.model.layers[i].output[0].save()
        try:
            smollm2.model.layers[5].output.no_such_method()
        except AttributeError:
            caught = True
        probs = smollm2.output.logits[0, -1].softmax(-1)
        top = probs.topk(3).indices.tolist()
        summary = {"top": top, "count": count}
    with torch.no_grad():
        reference = smollm2._model(**tokens(smollm2), output_hidden_states=True)
    states = reference.hidden_states
    assert count == 4 and branch == "real" and caught
    assert norms == pytest.approx([h.norm().item() for h in states[1:5]])
    assert capsys.readouterr().out.count("norm ") == 4
    for i in range(n_layers - 1):
        assert torch.equal(saved[i], states[i + 1][0]), i
    assert summary == {"top": reference.logits[0, -1].topk(3).indices.tolist(), "count": 4}


# -- editing outputs ---------------------------------------------------------------------------
# Each form is written exactly as a user would, inside a helper the block calls (plain Python),
# and compared with the same edit done by a plain forward hook returning a new output.


def _zero(layer, v):
    layer.output[:] = 0


def _scale_local(layer, v):
    out = layer.output
    out *= 0.5


def _scale_attribute(layer, v):
    layer.output *= 0.5


def _scale_slice(layer, v):
    layer.output[:] *= 0.5


def _add_vector(layer, v):
    layer.output[:] += v


def _add_vector_local(layer, v):
    out = layer.output
    out += v


def _set_last_position(layer, v):
    layer.output[:, -1] = v


def _zero_span(layer, v):
    layer.output[:, 2:4] = 0


def _replace(layer, v):
    layer.output = layer.output * 2


def _replace_with_new(layer, v):
    layer.output = layer.output + v


def _with_last(out, v):
    out = out.clone()
    out[:, -1] = v
    return out


def _with_span_zero(out):
    out = out.clone()
    out[:, 2:4] = 0
    return out


EDITS = {
    "out[:] = 0": (_zero, lambda o, v: o * 0),
    "out *= 0.5": (_scale_local, lambda o, v: o * 0.5),
    "layer.output *= 0.5": (_scale_attribute, lambda o, v: o * 0.5),
    "out[:] *= 0.5": (_scale_slice, lambda o, v: o * 0.5),
    "out[:] += vec": (_add_vector, lambda o, v: o + v),
    "out += vec": (_add_vector_local, lambda o, v: o + v),
    "out[:, -1] = vec": (_set_last_position, _with_last),
    "out[:, 2:4] = 0": (_zero_span, lambda o, v: _with_span_zero(o)),
    "output = output * 2": (_replace, lambda o, v: o * 2),
    "output = output + vec": (_replace_with_new, lambda o, v: o + v),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_output_edits_equal_hook_edits(lm, edit):
    ours, theirs = EDITS[edit]
    p = parts(lm)
    torch.manual_seed(1)
    vector = torch.randn(lm.config.hidden_size)
    with lm.trace(PROMPT):
        ours(p.layers[1], vector)
        seen = p.layers[1].output.clone().save()
        entering = p.layers[2].input.save()
        logits = lm.output.logits.save()
    with hooked({"layer": p.hf_layers[1]}, edit={"layer": lambda o: theirs(o, vector)}) as truth:
        expected = raw_logits(lm)
        edited = truth["layer"]
    torch.testing.assert_close(seen, edited)  # reading after the edit gives the edited value
    torch.testing.assert_close(entering, edited)  # and the next block receives it
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, raw_logits(lm))  # the edit changed the result
    assert_clean(lm._model)


def test_edits_of_other_modules(lm):
    """Embedding, MLP and final-norm outputs edit the same way as block outputs."""
    p = parts(lm)
    with lm.trace(PROMPT):
        p.embed.output[:, 0] = 0
        p.layers[0].mlp.output[:] *= 3
        p.norm.output[:, -1] = 1.0
        logits = lm.output.logits.save()

    def ones_last(o):
        o = o.clone()
        o[:, -1] = 1.0
        return o

    def zero_first(o):
        o = o.clone()
        o[:, 0] = 0
        return o

    modules = {"embed": p.hf_embed, "mlp": p.hf_layers[0].mlp, "norm": p.hf_norm}
    edits = {"embed": zero_first, "mlp": lambda o: o * 3, "norm": ones_last}
    torch.testing.assert_close(logits, raw_logits(lm, edits, modules))


def test_several_edits_in_forward_order(smollm2):
    vector = torch.randn(576)
    with smollm2.trace(PROMPT):
        smollm2.model.layers[4].output[:] *= 0.5
        smollm2.model.layers[6].output[:] += vector
        smollm2.model.layers[8].output[:, -1] = 0
        logits = smollm2.output.logits.save()
    layers = smollm2._model.model.layers
    expected = raw_logits(
        smollm2,
        {"a": lambda o: o * 0.5, "b": lambda o: o + vector, "c": lambda o: _with_last(o, 0)},
        {"a": layers[4], "b": layers[6], "c": layers[8]},
    )
    torch.testing.assert_close(logits, expected)


# -- editing inputs ------------------------------------------------------------------------------


def test_editing_inputs(lm):
    p = parts(lm)

    def doubled_input(module, args, kwargs):
        return (args[0] * 2, *args[1:]), kwargs

    handle = p.hf_layers[1].register_forward_pre_hook(doubled_input, with_kwargs=True)
    try:
        expected = raw_logits(lm)
    finally:
        handle.remove()
    layer = p.layers[1]
    with lm.trace(PROMPT):
        layer.input[:] *= 2
        in_place = lm.output.logits.save()
    with lm.trace(PROMPT):
        layer.input = layer.input * 2
        assigned = lm.output.logits.save()
    with lm.trace(PROMPT):
        args, kwargs = layer.inputs
        layer.inputs = ((args[0] * 2, *args[1:]), kwargs)
        whole = layer.input.save()
        logits = lm.output.logits.save()
    for result in (in_place, assigned, logits):
        torch.testing.assert_close(result, expected)
    assert torch.equal(whole, args[0] * 2)
    assert not torch.allclose(expected, raw_logits(lm))
    assert_clean(lm._model)


def test_inputs_set_to_something_other_than_args_and_kwargs_names_the_fix():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model = NNsight(net)
    x = torch.randn(2, 3)
    cases = [
        (lambda m: (torch.zeros(2, 3), m[1].inputs[1]), r"first item .* is a Tensor, not a tuple"),
        (lambda m: (m[1].inputs[0], [1]), r"second item .* is a list, not a dict"),
        (lambda m: torch.zeros(2, 3), r"a tuple of two items; got a Tensor.*\.input = x"),
    ]
    for make, message in cases:
        with pytest.raises(EditError, match=message):
            with model.trace(x):
                model[1].inputs = make(model)
        assert_clean(net)


# -- editing a tuple output (attention) ----------------------------------------------------------


def test_editing_one_item_of_an_attention_tuple(lm):
    p = parts(lm)
    attention = getattr(p.layers[1], p.attn)
    module = {"attn": getattr(p.hf_layers[1], p.attn)}
    expected = raw_logits(lm, {"attn": lambda o: (o[0] * 0, *o[1:])}, module)
    with lm.trace(PROMPT):
        attention.output[0][:] = 0
        in_place = lm.output.logits.save()
    with lm.trace(PROMPT):
        out = attention.output
        attention.output[0] = torch.zeros_like(out[0])
        item = lm.output.logits.save()
    with lm.trace(PROMPT):
        out = attention.output
        attention.output = (out[0] * 0, out[1])
        whole = attention.output.save()
        logits = lm.output.logits.save()
    for result in (in_place, item, logits):
        torch.testing.assert_close(result, expected)
    assert isinstance(whole, tuple) and len(whole) == 2 and whole[0].abs().max() == 0
    assert not torch.allclose(expected, raw_logits(lm))


def test_scaling_the_attention_output_at_the_last_position(lm):
    p = parts(lm)
    attention = getattr(p.layers[0], p.attn)
    with lm.trace(PROMPT):
        attention.output[0][:, -1] *= 3
        logits = lm.output.logits.save()

    def scale_last(o):
        first = o[0].clone()
        first[:, -1] *= 3
        return (first, *o[1:])

    expected = raw_logits(lm, {"attn": scale_last}, {"attn": getattr(p.hf_layers[0], p.attn)})
    torch.testing.assert_close(logits, expected)


# -- any torch module, and the module tree -------------------------------------------------------


def test_nnsight_wraps_a_plain_sequential():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model = NNsight(net)
    x = torch.randn(3, 4)
    with model.trace(x) as tracer:
        root_input = model.input.save()
        hidden = model[0].output.save()
        model[1].output[:, :4] = 0
        args, kwargs = model[-1].inputs
        into_last = model[-1].input.save()
        out = model.output.save()
    assert torch.equal(root_input, x)
    assert torch.equal(hidden, net[0](x))
    edited = torch.relu(net[0](x))
    edited[:, :4] = 0
    assert torch.equal(into_last, edited)
    assert len(args) == 1 and torch.equal(args[0], edited) and kwargs == {}
    assert torch.equal(out, net[2](edited))
    assert torch.equal(tracer.result, out)
    assert_clean(net)


def test_nnsight_replacements_of_inputs_and_outputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    model = NNsight(net)
    x = torch.randn(3, 4)
    with model.trace(x) as tracer:
        model[0].input = model[0].input * 2
        model[1].output = model[1].output + 1
        model.output = model.output * -1
    expected = -net[2](torch.tanh(net[0](x * 2)) + 1)
    torch.testing.assert_close(tracer.result, expected)
    with model.trace(x) as tracer:
        args, kwargs = model[2].inputs
        model[2].inputs = ((args[0] * 0,), kwargs)
    torch.testing.assert_close(tracer.result, net[2].bias.expand(3, 2))
    assert_clean(net)


def test_module_tree_mirrors_the_real_one(smollm2, capsys):
    hf = smollm2._model
    assert isinstance(hf, nn.Module) and type(hf).__name__ == "LlamaForCausalLM"
    assert smollm2.config is hf.config
    assert smollm2.tokenizer.padding_side == "left"
    assert smollm2.tokenizer.decode(smollm2.tokenizer(" Paris").input_ids) == " Paris"
    print(smollm2)
    shown = capsys.readouterr().out
    print(hf)
    assert shown == capsys.readouterr().out and "LlamaDecoderLayer" in shown
    layers = smollm2.model.layers
    assert len(layers) == smollm2.config.num_hidden_layers == 30
    assert [layer._module for layer in layers] == list(layers_of(hf))
    assert layers[-1]._module is hf.model.layers[29] and layers[-30]._module is hf.model.layers[0]
    assert [layer._module for layer in layers[1:3]] == list(hf.model.layers[1:3])
    assert layers[3].self_attn.q_proj.weight is hf.model.layers[3].self_attn.q_proj.weight
    with smollm2.trace(PROMPT):
        by_negative = layers[-1].output.save()
        by_positive = layers[29].output.save()
    assert torch.equal(by_negative, by_positive)
    with hooked({"last": hf.model.layers[29]}) as truth, torch.no_grad():
        hf(**tokens(smollm2))
    assert torch.equal(by_negative, truth["last"])


def test_module_tree_of_the_tiny_layouts(tiny):
    p = parts(tiny)
    assert tiny.tokenizer is not None and tiny.config is tiny._model.config
    assert repr(tiny) == repr(tiny._model)
    assert len(p.layers) == tiny.config.num_hidden_layers == 3
    assert [layer._module for layer in p.layers] == list(p.hf_layers)
    assert p.layers[-1]._module is p.hf_layers[2]
