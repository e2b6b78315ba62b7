"""Several invokes: one batched forward, each invoke its own rows, values crossing invokes.

Ground truth is each prompt run alone through the plain Hugging Face module (forward hooks
capture or edit), or two such plain passes for cross-prompt patching. Batched rows are left
padded, so an invoke's real tokens are its last ``n`` positions; they agree with the solo run
up to float noise (SmolLM2 has activations in the tens of thousands, hence a tolerance scaled
by the values' size).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from lenslab import InputError, NNsight

from ..conftest import hooked, layers_of

PROMPTS = ["The Eiffel Tower is located in the city of", "Hello", "One two three four five"]


def layer_envoys(model):
    if hasattr(model._model, "transformer"):
        return model.transformer.h
    return model.model.layers


def encode(model, prompt):
    return model.tokenizer(prompt, return_tensors="pt")


def alone(model, prompt, layer, edit=None):
    """(layer output, logits) of ``prompt`` run by itself, through plain hooks."""
    module = layers_of(model._model)[layer]
    edits = {"layer": edit} if edit is not None else None
    with hooked({"layer": module}, edit=edits) as captured, torch.no_grad():
        logits = model._model(**encode(model, prompt)).logits
    return captured["layer"], logits


def assert_rows(actual, expected, what="hidden"):
    """``actual`` (this invoke's padded rows) ends with ``expected`` (a solo run)."""
    n = expected.shape[1]
    assert actual.shape[0] == expected.shape[0]  # batch dimension kept
    assert actual.shape[1] >= n and actual.shape[2:] == expected.shape[2:]
    scale = expected.abs().max().item()
    atol = 1e-5 + (5e-5 if what == "logits" else 2e-6) * scale
    torch.testing.assert_close(actual[:, -n:], expected, rtol=1e-4, atol=atol)


class ForwardCounter:
    """Counts calls of the root module's forward with a plain forward pre-hook."""

    def __init__(self, model):
        self.calls = []
        self.handle = model._model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module, args, kwargs):
        self.calls.append(kwargs["input_ids"].shape[0] if "input_ids" in kwargs else None)

    def __enter__(self):
        return self.calls

    def __exit__(self, *exc):
        self.handle.remove()


# -- one forward, own rows ---------------------------------------------------------------------


def test_invokes_share_one_forward_and_equal_solo_runs(lm):
    layers = layer_envoys(lm)
    ids = encode(lm, PROMPTS[2]).input_ids
    with ForwardCounter(lm) as calls:
        with lm.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                first = layers[1].output.save()
                first_logits = lm.output.logits.save()
            with tracer.invoke(PROMPTS[1]):
                second = layers[1].output.save()
                second_logits = lm.output.logits.save()
            with tracer.invoke(ids):
                third = layers[1].output.save()
                third_logits = lm.output.logits.save()
            with tracer.invoke(ids[0, :3].tolist()):
                fourth = layers[1].output.save()
    assert calls == [4]  # one forward over a batch of four rows
    assert tracer.result.logits.shape[0] == 4
    for prompt, hidden, logits in (
        (PROMPTS[0], first, first_logits),
        (PROMPTS[1], second, second_logits),
        (PROMPTS[2], third, third_logits),
    ):
        expected_hidden, expected_logits = alone(lm, prompt, 1)
        assert_rows(hidden, expected_hidden)
        assert_rows(logits, expected_logits, "logits")
    with hooked({"layer": layers_of(lm._model)[1]}) as truth, torch.no_grad():
        lm._model(ids[:, :3])
    assert_rows(fourth, truth["layer"])


def test_each_invoke_sees_its_rows_of_the_left_padded_batch(smollm2):
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPTS[1]):
            _, short = smollm2.inputs
        with tracer.invoke(PROMPTS[0]):
            _, long = smollm2.inputs
    ids = encode(smollm2, PROMPTS[1]).input_ids
    n, total = ids.shape[1], encode(smollm2, PROMPTS[0]).input_ids.shape[1]
    assert short["input_ids"].shape == long["input_ids"].shape == (1, total)
    assert torch.equal(short["input_ids"][:, -n:], ids)
    assert (short["input_ids"][:, :-n] == smollm2.tokenizer.pad_token_id).all()
    assert short["attention_mask"].tolist() == [[0] * (total - n) + [1] * n]
    assert long["attention_mask"].tolist() == [[1] * total]
    # positions count real tokens only, so the padded prompt computes what it computes alone
    assert short["position_ids"][0, -n:].tolist() == list(range(n))
    assert long["position_ids"][0].tolist() == list(range(total))


def test_text_invokes_are_left_padded_even_if_the_tokenizer_pads_right(smollm2):
    tokenizer = smollm2.tokenizer
    tokenizer.padding_side = "right"
    try:
        with smollm2.trace() as tracer:
            with tracer.invoke(PROMPTS[1]):
                short = smollm2.model.layers[2].output[:, -1].save()
            with tracer.invoke([PROMPTS[0], PROMPTS[2]]):
                longer = smollm2.model.layers[2].output[:, -1].save()
    finally:
        tokenizer.padding_side = "left"
    for prompt, row in ((PROMPTS[1], short[0]), (PROMPTS[0], longer[0]), (PROMPTS[2], longer[1])):
        expected, _ = alone(smollm2, prompt, 2)
        torch.testing.assert_close(row, expected[0, -1], rtol=1e-4, atol=1e-4)


def test_a_list_of_prompts_in_one_invoke(smollm2):
    with ForwardCounter(smollm2) as calls:
        with smollm2.trace() as tracer:
            with tracer.invoke(PROMPTS[:2]):
                both = smollm2.model.layers[6].output.save()
            with tracer.invoke(PROMPTS[2]):
                third = smollm2.model.layers[6].output.save()
    assert calls == [3]
    assert both.shape[0] == 2 and third.shape[0] == 1
    for row, prompt in enumerate(PROMPTS):
        expected, _ = alone(smollm2, prompt, 6)
        actual = both[row : row + 1] if row < 2 else third
        assert_rows(actual, expected)


def test_invokes_of_a_plain_module_own_their_rows():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model = NNsight(net)
    x, y = torch.randn(3, 4), torch.randn(2, 4)
    with ForwardCounter(SimpleRoot(net)) as calls:
        with model.trace() as tracer:
            with tracer.invoke(x):
                hidden_x = model[0].output.save()
                model[1].output[:] = 0
                out_x = model.output.save()
            with tracer.invoke(y):
                hidden_y = model[0].output.save()
                out_y = model.output.save()
    assert len(calls) == 1
    assert torch.equal(hidden_x, net[0](x)) and torch.equal(hidden_y, net[0](y))
    assert torch.equal(out_x, net[2](torch.zeros(3, 8)))
    torch.testing.assert_close(out_y, net(y))
    assert tracer.result.shape == (5, 2)


class SimpleRoot:
    """Lets ForwardCounter count a plain module called positionally."""

    def __init__(self, module):
        self._model = module


# -- values crossing invokes ---------------------------------------------------------------------


def test_cross_prompt_patching_at_the_last_position(lm):
    layer, source, target = 1, "The cat sat on the mat and then", "The dog ran"
    layers = layer_envoys(lm)
    with lm.trace() as tracer:
        with tracer.invoke(source):
            cat = layers[layer].output.save()
        with tracer.invoke(target):
            layers[layer].output[:, -1] = cat[:, -1]
            patched = lm.output.logits.save()
    clean, _ = alone(lm, source, layer)  # pass 1: the source alone

    def replace_last(out):
        out = out.clone()
        out[:, -1] = clean[:, -1]
        return out

    _, expected = alone(lm, target, layer, edit=replace_last)  # pass 2: the target, patched
    assert_rows(patched, expected, "logits")
    assert not torch.allclose(patched[:, -1], alone(lm, target, layer)[1][:, -1], atol=1e-3)


def test_cross_prompt_patching_of_every_position(lm):
    layer, source, target = 1, "The cat sat on the", "The dog ran through the"
    assert len(lm.tokenizer(source).input_ids) == len(lm.tokenizer(target).input_ids)
    layers = layer_envoys(lm)
    with lm.trace() as tracer:
        with tracer.invoke(source):
            cat = layers[layer].output.save()
        with tracer.invoke(target):
            layers[layer].output[:] = cat
            patched = lm.output.logits.save()
    clean, source_logits = alone(lm, source, layer)
    _, expected = alone(lm, target, layer, edit=lambda out: clean.clone())
    assert_rows(patched, expected, "logits")
    # the whole residual stream came from the source, so the target reads as the source
    assert_rows(patched, source_logits, "logits")


def test_an_invoke_uses_a_value_another_invoke_edited_at_an_earlier_layer(smollm2):
    source, target = PROMPTS[0], PROMPTS[2]
    with smollm2.trace() as tracer:
        with tracer.invoke(source):
            smollm2.model.layers[2].output[:] *= 3
            tripled = smollm2.model.layers[2].output
            downstream = smollm2.model.layers[4].output.save()
        with tracer.invoke(target):
            smollm2.model.layers[5].output[:, -1] = tripled[:, -1]
            patched = smollm2.model.layers[5].output.save()
            logits = smollm2.output.logits.save()
    # pass 1: the source with layer 2 tripled
    layers = smollm2._model.model.layers
    with hooked({"l2": layers[2], "l4": layers[4]}, edit={"l2": lambda o: o * 3}) as first:
        with torch.no_grad():
            smollm2._model(**encode(smollm2, source))
    assert_rows(downstream, first["l4"])

    def take_last(out):
        out = out.clone()
        out[:, -1] = first["l2"][:, -1]
        return out

    # pass 2: the target with layer 5's last position replaced by that value
    expected_hidden, expected = alone(smollm2, target, 5, edit=take_last)
    assert_rows(patched, expected_hidden)
    assert_rows(logits, expected, "logits")


def test_edits_stay_in_their_own_rows(smollm2):
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPTS[1]):
            before = smollm2.model.layers[10].output.save()
            logits_before = smollm2.output.logits.save()
        with tracer.invoke(PROMPTS[0]):
            smollm2.model.layers[2].output[:] = 0
            zeroed = smollm2.output.logits.save()
        with tracer.invoke(PROMPTS[2]):
            after = smollm2.model.layers[10].output.save()
            logits_after = smollm2.output.logits.save()
    for prompt, hidden, logits in (
        (PROMPTS[1], before, logits_before),
        (PROMPTS[2], after, logits_after),
    ):
        expected_hidden, expected_logits = alone(smollm2, prompt, 10)
        assert_rows(hidden, expected_hidden)
        assert_rows(logits, expected_logits, "logits")
    _, expected = alone(smollm2, PROMPTS[0], 2, edit=lambda o: o * 0)
    assert_rows(zeroed, expected, "logits")
    # the whole batch result: each invoke's rows, in invoke order
    full = tracer.result.logits
    assert torch.equal(full[0:1], logits_before) and torch.equal(full[1:2], zeroed)
    assert torch.equal(full[2:3], logits_after)


def test_an_edit_of_the_same_module_in_two_invokes(tiny):
    layers = layer_envoys(tiny)
    with tiny.trace() as tracer:
        with tracer.invoke(PROMPTS[0]):
            layers[0].output[:] *= 2
            doubled = tiny.output.logits.save()
        with tracer.invoke(PROMPTS[1]):
            layers[0].output = layers[0].output * 0
            zeroed = tiny.output.logits.save()
    assert_rows(doubled, alone(tiny, PROMPTS[0], 0, edit=lambda o: o * 2)[1], "logits")
    assert_rows(zeroed, alone(tiny, PROMPTS[1], 0, edit=lambda o: o * 0)[1], "logits")


# -- Python scope ------------------------------------------------------------------------------


def test_each_invoke_in_a_loop_sees_its_own_loop_variable(lm):
    layers = layer_envoys(lm)
    outputs = [None] * len(PROMPTS)
    seen = [None] * len(PROMPTS)
    with ForwardCounter(lm) as calls:
        with lm.trace() as tracer:
            for i, prompt in enumerate(PROMPTS):
                with tracer.invoke(prompt):
                    outputs[i] = layers[1].output[:, -1].save()
                    seen[i] = (i, prompt)
    assert calls == [len(PROMPTS)]
    assert seen == list(enumerate(PROMPTS))
    for prompt, output in zip(PROMPTS, outputs):
        expected, _ = alone(lm, prompt, 1)
        assert_rows(output.unsqueeze(1), expected[:, -1:])


def test_names_bound_in_invokes_come_back_as_function_locals(tiny_llama):
    def run():
        hidden = None
        with tiny_llama.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                hidden = tiny_llama.model.layers[0].output.save()
                count = 7
            with tracer.invoke(PROMPTS[1]):
                other = tiny_llama.model.layers[0].output.save()
                count += 1
        return hidden, count, other

    hidden, count, other = run()
    assert count == 8  # invokes run in order: the second saw the first's binding
    assert_rows(hidden, alone(tiny_llama, PROMPTS[0], 0)[0])
    assert_rows(other, alone(tiny_llama, PROMPTS[1], 0)[0])


def test_names_bound_in_invokes_reach_nonlocal_and_global_scopes(tiny_llama):
    def outer():
        found = None

        def inner():
            nonlocal found
            with tiny_llama.trace() as tracer:
                with tracer.invoke(PROMPTS[0]):
                    found = tiny_llama.model.layers[0].output.save()

        inner()
        return found

    assert isinstance(outer(), torch.Tensor)
    global _bound_by_an_invoke
    _bound_by_an_invoke = None

    def assign_global():
        global _bound_by_an_invoke
        with tiny_llama.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                _bound_by_an_invoke = tiny_llama.model.layers[0].output.save()
        return _bound_by_an_invoke

    seen_inside = assign_global()
    assert isinstance(seen_inside, torch.Tensor)
    assert isinstance(_bound_by_an_invoke, torch.Tensor)
    assert_rows(_bound_by_an_invoke, alone(tiny_llama, PROMPTS[0], 0)[0])


_bound_by_an_invoke = None


def test_invokes_at_module_level(tiny_llama, tmp_path):
    import runpy

    script = tmp_path / "notebook_like.py"
    script.write_text(
        "outs = {}\n"
        "with model.trace() as tracer:\n"
        "    for i, prompt in enumerate(prompts):\n"
        "        with tracer.invoke(prompt):\n"
        "            outs[i] = model.model.layers[0].output.save()\n"
        "            last = model.output.logits.save()\n"
    )
    scope = runpy.run_path(str(script), init_globals={"model": tiny_llama, "prompts": PROMPTS[:2]})
    assert scope["i"] == 1 and set(scope["outs"]) == {0, 1}
    for i, prompt in enumerate(PROMPTS[:2]):
        assert_rows(scope["outs"][i], alone(tiny_llama, prompt, 0)[0])
    assert_rows(scope["last"], alone(tiny_llama, PROMPTS[1], 0)[1], "logits")


# -- errors ------------------------------------------------------------------------------------


def test_inputs_in_both_trace_and_invoke_is_an_error(tiny_llama):
    with pytest.raises(InputError, match="not both"):
        with tiny_llama.trace(PROMPTS[0]) as tracer:
            with tracer.invoke(PROMPTS[1]):
                pass


def test_invokes_with_different_model_arguments_is_an_error(tiny_llama):
    with pytest.raises(InputError, match="differ"):
        with tiny_llama.trace() as tracer:
            with tracer.invoke(PROMPTS[0], output_attentions=True):
                first = tiny_llama.model.layers[0].output.save()
            with tracer.invoke(PROMPTS[1]):
                second = tiny_llama.model.layers[0].output.save()
    assert "first" not in locals() and "second" not in locals()


def test_an_invoke_whose_body_is_only_pass_still_adds_its_rows(tmp_path):
    """``with tracer.invoke(p): pass`` contributes a batch row; nothing escapes the block.

    Run in a child process: when this fails, lenslab's internal SkipBody escapes and leaves
    ``torch.Tensor.save`` installed, which would spoil every later test of this session.
    """
    script = tmp_path / "pass_body.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "from lenslab import NNsight\n"
        "torch.manual_seed(0)\n"
        "net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())\n"
        "model = NNsight(net)\n"
        "x, y = torch.randn(3, 4), torch.randn(2, 4)\n"
        "with model.trace() as tracer:\n"
        "    with tracer.invoke(x):\n"
        "        pass\n"
        "    with tracer.invoke(y):\n"
        "        hidden = model[0].output.save()\n"
        "assert torch.equal(tracer.result, net(torch.cat([x, y])))\n"
        "assert torch.equal(hidden, net[0](y))\n"
        "with model.trace() as tracer:\n"
        "    with tracer.invoke(x):\n"
        "        ...\n"
        "assert torch.equal(tracer.result, net(x))\n"
        "assert not hasattr(hidden, 'save')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-1500:]


@pytest.mark.skipif(not hasattr(BaseException, "add_note"), reason="notes need Python 3.11")
def test_using_a_name_before_an_earlier_invoke_binds_it_is_explained(smollm2):
    with pytest.raises(NameError) as caught:
        with smollm2.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                late_value = smollm2.model.layers[20].output.save()
            with tracer.invoke(PROMPTS[0]):
                smollm2.model.layers[2].output[:] = late_value[:, :1]
    assert "invoke 0 binds 'late_value'" in "\n".join(caught.value.__notes__)
