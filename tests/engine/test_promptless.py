"""Promptless invokes: ``with tracer.invoke():`` sees every row of the invokes that have inputs.

As nnsight documents: such a body reads and edits the whole batch (all input invokes' rows, in
their order), wherever it stands among the invokes, as often as it appears; a trace of only
promptless invokes has no inputs at all. Ground truth: each prompt run alone through the plain
Hugging Face module with forward hooks (batched rows are left padded, so a prompt's real tokens
are its row's last positions).
"""

from __future__ import annotations

import traceback
import warnings

import pytest
import torch
from torch import nn

from lenslab import InputError, InvokeError, LensWarning, NNsight, TraceStateError

from ..conftest import assert_clean, hooked, layers_of

PROMPTS = ["The Eiffel Tower is located in the city of", "Hello", "One two three four five"]


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def tiny_lm(request):
    return request.getfixturevalue(request.param)


def envoy_layers(lm):
    return lm.transformer.h if hasattr(lm._model, "transformer") else lm.model.layers


def alone(lm, prompt, layer, edit=None):
    """(layer ``layer``'s output, logits) of ``prompt`` run by itself; ``edit`` applies to
    every layer output before ``layer`` is read (as a dict {index: fn})."""
    modules = {str(i): m for i, m in enumerate(layers_of(lm._model))}
    edits = {str(i): fn for i, fn in (edit or {}).items()}
    with hooked(modules, edits) as captured, torch.no_grad():
        logits = lm._model(**lm.tokenizer(prompt, return_tensors="pt")).logits
    return captured[str(layer)], logits


def close(actual, expected):
    n = expected.shape[1]
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual[:, -n:], expected, rtol=1e-4, atol=1e-5 + 5e-5 * scale)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_promptless_invoke_sees_every_row_of_the_others_wherever_it_stands(tiny_lm, where):
    layers = envoy_layers(tiny_lm)
    with tiny_lm.trace() as tracer:
        if where == "first":
            with tracer.invoke():
                every = layers[1].output.save()
        with tracer.invoke(PROMPTS[0]):
            first = layers[1].output.save()
        if where == "middle":
            with tracer.invoke():
                every = layers[1].output.save()
        with tracer.invoke([PROMPTS[1], PROMPTS[2]]):  # batched: two rows
            rest = layers[1].output.save()
        if where == "last":
            with tracer.invoke():
                every = layers[1].output.save()
    assert every.shape[0] == 3 and first.shape[0] == 1 and rest.shape[0] == 2
    assert torch.equal(every, torch.cat([first, rest]))
    for row, prompt in enumerate(PROMPTS):
        close(every[row : row + 1], alone(tiny_lm, prompt, 1)[0])
    assert_clean(tiny_lm._model)


def test_several_promptless_invokes_and_their_edits_apply_to_every_row(tiny_lm):
    layers = envoy_layers(tiny_lm)
    shift = torch.linspace(-1, 1, tiny_lm.config.hidden_size)
    with tiny_lm.trace() as tracer:
        with tracer.invoke():
            layers[0].output[:, -1] += shift  # every row's last real token
        with tracer.invoke(PROMPTS[0]):
            first = tiny_lm.output.logits.save()
        with tracer.invoke(PROMPTS[1]):
            second = tiny_lm.output.logits.save()
        with tracer.invoke():
            late = layers[2].output.save()

    def edit(output):
        output = output.clone()
        output[:, -1] += shift
        return output

    for row, (prompt, logits) in enumerate(((PROMPTS[0], first), (PROMPTS[1], second))):
        hidden, expected = alone(tiny_lm, prompt, 2, edit={0: edit})
        close(logits, expected)
        close(late[row : row + 1], hidden)
        unedited = alone(tiny_lm, prompt, 2)[1]
        assert not torch.allclose(expected[:, -1], unedited[:, -1])  # the edit mattered
    assert_clean(tiny_lm._model)


def test_a_promptless_invoke_before_an_edit_sees_the_edit_at_later_modules(tiny_llama):
    layers = tiny_llama.model.layers
    with tiny_llama.trace() as tracer:
        with tracer.invoke():
            after = layers[2].output.save()
        with tracer.invoke(PROMPTS[0]):
            layers[0].output[:] = 0
    zero = {0: torch.zeros_like}
    close(after, alone(tiny_llama, PROMPTS[0], 2, edit=zero)[0])
    assert_clean(tiny_llama._model)


def test_promptless_invokes_in_generation(tiny_lm):
    prompt = PROMPTS[0]
    with tiny_lm.generate(max_new_tokens=3, do_sample=False) as tracer:
        with tracer.invoke(prompt):
            pass
        with tracer.invoke():
            tokens = list().save()
            for _ in tracer.iter[:]:
                tokens.append(tiny_lm.lm_head.output[:, -1].argmax(dim=-1))
        with tracer.invoke():
            result = tracer.result.save()
    inputs = tiny_lm.tokenizer(prompt, return_tensors="pt")
    expected = tiny_lm._model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert torch.equal(result, expected)
    assert torch.cat(tokens).tolist() == expected[0, inputs.input_ids.shape[1] :].tolist()
    assert_clean(tiny_lm._model)


def test_promptless_invoke_on_smollm2(smollm2):
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPTS[1]):
            pass
        with tracer.invoke(PROMPTS[0]):
            pass
        with tracer.invoke():
            last = smollm2.model.layers[29].output[:, -1].save()
    for row, prompt in enumerate(PROMPTS[1::-1]):
        expected = alone(smollm2, prompt, 29)[0][:, -1]
        torch.testing.assert_close(last[row : row + 1], expected, rtol=1e-4, atol=1e-3)


def test_a_plain_module_with_one_input_invoke_and_a_promptless_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model = NNsight(net)
    x = torch.randn(5, 3)
    with model.trace() as tracer:
        with tracer.invoke(x):
            out = model.output.save()
        with tracer.invoke():
            hidden = model[0].output.save()
    with hooked({"0": net[0]}) as captured, torch.no_grad():
        expected = net(x)
    assert torch.equal(out, expected) and torch.equal(hidden, captured["0"])
    assert_clean(net)


# -- mistakes --------------------------------------------------------------------------------------


def test_only_promptless_invokes_is_an_input_error_naming_the_fix(tiny_lm):
    with pytest.raises(InputError, match=r"Give one its inputs, tracer\.invoke\('prompt'\)"):
        with tiny_lm.trace() as tracer:
            with tracer.invoke():
                envoy_layers(tiny_lm)[0].output.save()
            with tracer.invoke():
                pass
    assert_clean(tiny_lm._model)


def test_a_promptless_invoke_in_a_trace_with_inputs_is_an_input_error(tiny_llama):
    with pytest.raises(InputError, match=r"write the code directly in the trace's body"):
        with tiny_llama.trace(PROMPTS[0]) as tracer:
            with tracer.invoke():
                tiny_llama.model.layers[0].output.save()
    assert_clean(tiny_llama._model)


def test_a_promptless_invoke_without_source_is_a_clear_error(tiny_llama):
    code = (
        "with model.trace() as tracer:\n"
        "    with tracer.invoke(prompt):\n"
        "        pass\n"
        "    with tracer.invoke():\n"
        "        model.model.layers[0].output.save()\n"
    )
    namespace = {"model": tiny_llama, "prompt": PROMPTS[0]}
    with (
        warnings.catch_warnings(),  # the first invoke warns that it runs alone (once a process)
        pytest.raises(TraceStateError, match=r"without inputs joins the forward pass.*exec"),
    ):
        warnings.simplefilter("ignore", LensWarning)
        exec(code, namespace)
    assert_clean(tiny_llama._model)


def test_an_invoke_inside_an_invoke_raises_at_once(tiny_lm):
    layers = envoy_layers(tiny_lm)
    reached = []
    with pytest.raises(InvokeError, match=r"inside another invoke's body") as caught:
        with tiny_lm.trace() as tracer:
            with tracer.invoke(PROMPTS[0]):
                layers[0].output.save()
                with tracer.invoke(PROMPTS[1]):  # the nested invoke
                    reached.append("inner")
                reached.append("after")
    assert isinstance(caught.value, ValueError)
    assert reached == []
    ours = [f for f in traceback.extract_tb(caught.value.__traceback__) if f.filename == __file__]
    assert "# the nested invoke" in ours[-1].line
    assert_clean(tiny_lm._model)
