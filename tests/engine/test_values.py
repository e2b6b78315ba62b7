"""Reading and editing module values, against plain forward hooks and output_hidden_states."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lenslab import NNsight

from ..conftest import assert_clean, hooked, layers_of

PROMPT = "The Eiffel Tower is located in the city of"


def tokens(model, prompt=PROMPT):
    return model.tokenizer(prompt, return_tensors="pt")


def raw_logits(model, edits=None, modules=None):
    with hooked(modules or {}, edit=edits), torch.no_grad():
        return model._model(**tokens(model)).logits


def parts(model):
    """(layers envoy, hf layers, attention name, embedding envoy) for GPT-2 or Llama layouts."""
    hf = model._model
    if hasattr(hf, "transformer"):
        return model.transformer.h, hf.transformer.h, "attn", model.transformer.wte
    return model.model.layers, hf.model.layers, "self_attn", model.model.embed_tokens


# -- reading --------------------------------------------------------------------------------


def test_layer_outputs_equal_hidden_states(lm):
    layers, _, _, embedding = parts(lm)
    n = len(layers)
    with lm.trace(PROMPT):
        embedded = embedding.output.save()
        outputs = [layers[i].output.save() for i in range(n - 1)]
        logits = lm.output.logits.save()
    with torch.no_grad():
        reference = lm._model(**tokens(lm), output_hidden_states=True)
    if not hasattr(lm._model, "transformer"):  # GPT-2 adds position embeddings first
        assert torch.equal(embedded, reference.hidden_states[0])
    for i, output in enumerate(outputs):  # the last hidden state is the final-normed one
        assert torch.equal(output, reference.hidden_states[i + 1]), i
        assert output.shape == (1, reference.logits.shape[1], lm.config.hidden_size)
    assert torch.equal(logits, reference.logits)


def test_submodule_values_equal_plain_hooks(lm):
    layers, hf_layers, attention, _ = parts(lm)
    with lm.trace(PROMPT):
        attn = getattr(layers[1], attention).output.save()
        mlp = layers[1].mlp.output.save()
        args, kwargs = layers[1].inputs
        first = layers[1].input.save()
        head = lm.lm_head.output.save()
    modules = {
        "attn": getattr(hf_layers[1], attention),
        "mlp": hf_layers[1].mlp,
        "layer0": hf_layers[0],
        "head": lm._model.lm_head,
    }
    with hooked(modules) as expected, torch.no_grad():
        lm._model(**tokens(lm))
    assert isinstance(attn, tuple) and torch.equal(attn[0], expected["attn"][0])
    assert torch.equal(mlp, expected["mlp"])
    assert (torch.equal(first, expected["layer0"]) and args[0] is first) or torch.equal(
        args[0], first
    )
    assert isinstance(kwargs, dict)
    assert torch.equal(head, expected["head"])
    assert_clean(lm._model)


def test_output_index_zero_is_batch_row_zero(smollm2):
    """transformers 5: a decoder layer returns a tensor, so [0] is the first batch row."""
    with smollm2.trace([PROMPT, "Hello there, my friend, how are"]):
        full = smollm2.model.layers[3].output.save()
        row = smollm2.model.layers[3].output[0].save()
    assert full.dim() == 3 and torch.equal(row, full[0])


def test_real_model_knows_paris(smollm2):
    with smollm2.trace(PROMPT):
        logits = smollm2.output.logits.save()
    assert smollm2.tokenizer.decode(logits[0, -1].argmax()) == " Paris"


def test_logit_lens_idiom_calls_modules_directly(smollm2):
    with smollm2.trace(PROMPT):
        last = smollm2.model.layers[-1].output
        lens = smollm2.lm_head(smollm2.model.norm(last)).save()
        logits = smollm2.output.logits.save()
    torch.testing.assert_close(lens, logits)


def test_plain_python_inside_the_block(smollm2):
    def norm_of(t):
        return t.detach().norm().item()

    with smollm2.trace(PROMPT):
        norms = []
        for layer in smollm2.model.layers[:4]:
            hidden = layer.output
            norms.append(norm_of(hidden))
            if hidden[0, -1].mean() > 1e9:
                raise AssertionError("values are real tensors, so this branch is decided here")
        count = len(norms)
        saved = [None] * 3
        for i in range(3):
            saved[i] = smollm2.model.layers[i].output[0].save()
    reference = smollm2._model(**tokens(smollm2), output_hidden_states=True).hidden_states
    assert count == 4
    assert norms == pytest.approx([h.detach().norm().item() for h in reference[1:5]])
    for i in range(3):
        assert torch.equal(saved[i], reference[i + 1][0])


# -- editing --------------------------------------------------------------------------------


EDITS = {
    "zero": (lambda out: out.__setitem__(slice(None), 0), lambda out: out * 0),
    "scale": (lambda out: out.__imul__(0.5), lambda out: out * 0.5),
    "add": (lambda out: out.__iadd__(0.25), lambda out: out + 0.25),
    "last position": (
        lambda out: out[:, -1].__setitem__(slice(None), 1.0),
        lambda out: torch.cat([out[:, :-1], torch.ones_like(out[:, -1:])], 1),
    ),
    "span": (
        lambda out: out[:, 2:4].__setitem__(slice(None), 0),
        lambda out: torch.cat([out[:, :2], out[:, 2:4] * 0, out[:, 4:]], 1),
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_in_place_edits_equal_hook_edits(lm, edit):
    ours, theirs = EDITS[edit]
    layers, hf_layers, _, _ = parts(lm)
    with lm.trace(PROMPT):
        ours(layers[1].output)
        logits = lm.output.logits.save()
    expected = raw_logits(lm, {"layer": theirs}, {"layer": hf_layers[1]})
    torch.testing.assert_close(logits, expected)
    assert_clean(lm._model)


def test_in_place_operators_as_written(smollm2):
    vector = torch.randn(576)
    with smollm2.trace(PROMPT):
        smollm2.model.layers[4].output[:] *= 0.5
        smollm2.model.layers[6].output[:] += vector
        logits = smollm2.output.logits.save()
    layers = smollm2._model.model.layers
    expected = raw_logits(
        smollm2,
        {"a": lambda o: o * 0.5, "b": lambda o: o + vector},
        {"a": layers[4], "b": layers[6]},
    )
    torch.testing.assert_close(logits, expected)


def test_replacement_by_assignment(lm):
    layers, hf_layers, _, _ = parts(lm)
    with lm.trace(PROMPT):
        layers[1].output = layers[1].output * 2
        logits = lm.output.logits.save()
    torch.testing.assert_close(
        logits, raw_logits(lm, {"layer": lambda o: o * 2}, {"layer": hf_layers[1]})
    )


def test_editing_inputs(smollm2):
    layers = smollm2._model.model.layers

    def doubled_input(module, args, kwargs):
        return (args[0] * 2, *args[1:]), kwargs

    handle = layers[5].register_forward_pre_hook(doubled_input, with_kwargs=True)
    expected = raw_logits(smollm2)
    handle.remove()
    with smollm2.trace(PROMPT):
        smollm2.model.layers[5].input[:] *= 2
        in_place = smollm2.output.logits.save()
    with smollm2.trace(PROMPT):
        smollm2.model.layers[5].input = smollm2.model.layers[5].input * 2
        assigned = smollm2.output.logits.save()
    with smollm2.trace(PROMPT):
        args, kwargs = smollm2.model.layers[5].inputs
        smollm2.model.layers[5].inputs = ((args[0] * 2, *args[1:]), kwargs)
        whole = smollm2.output.logits.save()
    for logits in (in_place, assigned, whole):
        torch.testing.assert_close(logits, expected)


def test_editing_one_item_of_an_attention_tuple(lm):
    layers, hf_layers, attention, _ = parts(lm)
    module = {"attn": getattr(hf_layers[1], attention)}
    expected = raw_logits(lm, {"attn": lambda o: (o[0] * 0, *o[1:])}, module)
    with lm.trace(PROMPT):
        getattr(layers[1], attention).output[0][:] = 0
        in_place = lm.output.logits.save()
    with lm.trace(PROMPT):
        out = getattr(layers[1], attention).output
        getattr(layers[1], attention).output[0] = torch.zeros_like(out[0])
        item = lm.output.logits.save()
    with lm.trace(PROMPT):
        out = getattr(layers[1], attention).output
        getattr(layers[1], attention).output = (out[0] * 0, *out[1:])
        whole = lm.output.logits.save()
    for logits in (in_place, item, whole):
        torch.testing.assert_close(logits, expected)


# -- any torch module, and the module tree ---------------------------------------------------------


def test_nnsight_wraps_a_plain_sequential():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model = NNsight(net)
    x = torch.randn(3, 4)
    with model.trace(x) as tracer:
        hidden = model[0].output.save()
        model[1].output[:, :4] = 0
        into_last = model[2].input.save()
        out = model.output.save()
    assert torch.equal(hidden, net[0](x))
    edited = torch.relu(net[0](x))
    edited[:, :4] = 0
    assert torch.equal(into_last, edited)
    assert torch.equal(out, net[2](edited))
    assert tracer.result is out
    assert_clean(net)


def test_module_tree_mirrors_the_real_one(smollm2):
    assert smollm2._model is smollm2._module
    assert smollm2.config.num_hidden_layers == len(smollm2.model.layers) == 30
    assert repr(smollm2) == repr(smollm2._model)
    assert smollm2.model.layers[-1]._module is smollm2._model.model.layers[29]
    assert [layer._module for layer in smollm2.model.layers][:2] == list(
        smollm2._model.model.layers
    )[:2]
    assert smollm2.model.layers[3].self_attn.q_proj.weight is (
        smollm2._model.model.layers[3].self_attn.q_proj.weight
    )
    assert layers_of(smollm2._model) is smollm2.model.layers._module
