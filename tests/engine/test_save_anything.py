"""``.save()`` on any object in a block (``[].save()``, ``dict().save()``, ints, strings, tuples,
``.item()`` results), as nnsight code writes it, without changing any builtin type.

Where lenslab can read the block's source it reruns the body from code whose ``.save()`` calls
go through its save helper; tracebacks and pdb still show the user's lines. Where it cannot
(``exec``, ``%%time``), ``x.save()`` on an object without ``save`` is a clear ``SaveError``.
Ground truth: plain forward hooks and direct Hugging Face calls.
"""

from __future__ import annotations

import ast
import textwrap
import traceback

import pytest
import torch
from torch import nn

import lenslab
from lenslab import LensError, NNsight, SaveError
from lenslab.engine.rewrite import rewrite_saves

from ..conftest import assert_clean, hooked, layers_of
from .test_robustness import TO_NEXT_LINE, run_pdb

THIS_FILE = __file__
PROMPT = "The Eiffel Tower is located in the city of"
PROMPTS = [PROMPT, "Hello there"]


@pytest.fixture(params=["tiny_gpt2", "tiny_llama"])
def tiny_lm(request):
    return request.getfixturevalue(request.param)


def envoy_layers(lm):
    return lm.transformer.h if hasattr(lm._model, "transformer") else lm.model.layers


def plain_run(lm, prompts):
    """Every layer's output and the logits, from one plain forward with hooks."""
    modules = {str(i): m for i, m in enumerate(layers_of(lm._model))}
    inputs = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    with hooked(modules) as captured, torch.no_grad():
        logits = lm._model(**inputs).logits
    return [captured[str(i)] for i in range(len(modules))], logits


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_builtins_saved_in_a_trace_are_usable_after_it(tiny_lm, batched):
    prompts = PROMPTS if batched else PROMPT
    layers = envoy_layers(tiny_lm)
    with tiny_lm.trace(prompts):
        hiddens = list().save()
        empty = [].save()
        named = dict().save()
        for layer in layers:
            hiddens.append(layer.output)
        named["logits"] = tiny_lm.output.logits
        top = tiny_lm.output.logits[0, -1].argmax().item().save()
        count = len(hiddens)
        count = count.save()
        word = "layers".save()
        pair = (count, word).save()
    assert len(hiddens) == count == 3
    for row, prompt in enumerate(PROMPTS if batched else [PROMPT]):
        expected_hiddens, expected_logits = plain_run(tiny_lm, prompt)  # alone: no padding
        n = expected_logits.shape[1]
        for got, expected in zip(hiddens, expected_hiddens):
            torch.testing.assert_close(got[row : row + 1, -n:], expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(named["logits"][row : row + 1, -n:], expected_logits)
        if row == 0:
            assert top == expected_logits[0, -1].argmax().item() and isinstance(top, int)
    assert empty == [] and word == "layers" and pair == (3, "layers")
    assert_clean(tiny_lm._model)


def test_saved_builtins_in_generation_steps(tiny_lm):
    with tiny_lm.generate(PROMPT, max_new_tokens=3, do_sample=False) as tracer:
        tokens = list().save()
        for _ in tracer.iter[:]:
            tokens.append(tiny_lm.lm_head.output[0, -1].argmax(dim=-1).item())
    inputs = tiny_lm.tokenizer(PROMPT, return_tensors="pt")
    expected = tiny_lm._model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert tokens == expected[0, inputs.input_ids.shape[1] :].tolist()
    assert_clean(tiny_lm._model)


def test_saved_builtins_in_invokes_promptless_invokes_and_a_function(tiny_lm):
    layers = envoy_layers(tiny_lm)

    def run():
        with tiny_lm.trace() as tracer:
            rows = [].save()
            with tracer.invoke(PROMPTS[0]):
                rows.append(layers[0].output[:, -1])
                first = {"n": layers[0].output.shape[0]}.save()
            with tracer.invoke():
                every = list().save()
                every.append(layers[0].output[:, -1])
            with tracer.invoke(PROMPTS[1]):
                rows.append(layers[0].output[:, -1])
        return rows, first, every

    rows, first, every = run()
    expected = torch.cat([plain_run(tiny_lm, p)[0][0][:, -1] for p in PROMPTS])  # each alone
    torch.testing.assert_close(torch.cat(rows), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(every[0], expected, rtol=1e-4, atol=1e-5)
    assert first == {"n": 1}
    assert_clean(tiny_lm._model)


def test_saved_builtins_in_a_session_and_in_model_edit(tiny_lm):
    layers = envoy_layers(tiny_lm)
    with tiny_lm.session():
        both = [].save()
        with tiny_lm.trace(PROMPTS[0]):
            both.append(layers[1].output)
        with tiny_lm.trace(PROMPTS[1]):
            both.append(layers[1].output)
    sums = []
    with tiny_lm.edit() as edited:
        sums.append(layers[2].output.sum().item().save())
    with edited.trace(PROMPT):
        logits = tiny_lm.output.logits.save()
    expected = [plain_run(tiny_lm, p)[0][1] for p in PROMPTS]
    for got, want in zip(both, expected):
        torch.testing.assert_close(got, want)
    hidden, expected_logits = plain_run(tiny_lm, PROMPT)
    assert sums == [pytest.approx(hidden[2].sum().item(), rel=1e-5)]
    torch.testing.assert_close(logits, expected_logits)
    assert_clean(tiny_lm._model)


def test_stop_and_validate_in_a_rewritten_body(tiny_llama):
    layers = tiny_llama.model.layers
    with tiny_llama.trace(PROMPT) as tracer:
        kept = [].save()
        kept.append(layers[0].output)
        tracer.stop()
        kept.append("never")
    with tiny_llama.trace(PROMPT, validate=True):
        shapes = [].save()
        shapes.append(tuple(layers[1].output.shape))
    expected, _ = plain_run(tiny_llama, PROMPT)
    assert len(kept) == 1
    torch.testing.assert_close(kept[0], expected[0])
    assert shapes == [tuple(expected[1].shape)]
    assert_clean(tiny_llama._model)


def test_save_on_smollm2(smollm2):
    with smollm2.trace(PROMPT):
        tops = list().save()
        for i in (5, 29):
            tops.append(smollm2.model.layers[i].output[0, -1].norm().item())
    expected, _ = plain_run(smollm2, PROMPT)
    assert tops == [pytest.approx(expected[i][0, -1].norm().item(), rel=1e-5) for i in (5, 29)]


def test_lenslab_save_still_works_everywhere(tiny_gpt2):
    with tiny_gpt2.trace(PROMPT):
        values = lenslab.save([tiny_gpt2.transformer.h[0].output])
    namespace = {"model": tiny_gpt2, "lenslab": lenslab, "PROMPT": PROMPT}
    exec(
        "with model.trace(PROMPT):\n    kept = lenslab.save({'h': model.transformer.h[0].output})",
        namespace,
    )
    expected, _ = plain_run(tiny_gpt2, PROMPT)
    torch.testing.assert_close(values[0], expected[0])
    torch.testing.assert_close(namespace["kept"]["h"], expected[0])


# -- tracebacks, pdb, no source -------------------------------------------------------------------


@pytest.fixture
def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))


def failing_in_a_function(model, x):
    with model.trace(x):
        kept = [].save()
        kept.append(model[0].output)
        ratio = (model[2].output.sum().item() / 0).save()  # the failing save line
    return ratio


def test_a_traceback_from_a_line_with_save_names_the_users_line(net):
    model = NNsight(net)
    x = torch.ones(2, 3)
    with pytest.raises(ZeroDivisionError) as caught:
        failing_in_a_function(model, x)
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert last.filename == THIS_FILE and "# the failing save line" in last.line
    assert last.name == "failing_in_a_function"
    assert caught.value.__context__ is None  # nothing of how lenslab skipped the body
    with pytest.raises(KeyError) as caught:
        with model.trace(x):
            names = dict().save()
            names["h"] = model[0].output
            names["missing"].save()  # the module-level failing line
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert last.filename == THIS_FILE and "# the module-level failing line" in last.line
    assert "h" in names  # names bound before the failure stay bound
    assert_clean(net)


PDB_SCRIPT = """
import torch, torch.nn as nn
from lenslab import NNsight
torch.manual_seed(0)
model = NNsight(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)))
with model.trace(torch.ones(2, 3)):
    kept = [].save()
    kept.append(model[0].output)
    breakpoint()
    kept.append(model[2].output)
    done = len(kept)
print("finished", done, [tuple(k.shape) for k in kept])
"""


def test_pdb_stops_at_the_users_lines_in_a_block_with_save_on_a_list(tmp_path):
    commands = [*TO_NEXT_LINE, "p len(kept)", "n", "p len(kept)", "c"]
    path, output = run_pdb(tmp_path, PDB_SCRIPT, commands)
    assert f"> {path}(9)<module>()" in output, output  # the line after breakpoint()
    assert "-> kept.append(model[2].output)" in output
    assert f"> {path}(10)<module>()" in output, output  # `n` steps over a read, to the next line
    assert "-> done = len(kept)" in output
    assert "(Pdb) 1" in output and "(Pdb) 2" in output, output
    assert "finished 2 [(2, 5), (2, 2)]" in output
    assert "Traceback" not in output


def test_without_source_save_on_a_builtin_is_a_clear_error(net):
    model = NNsight(net)
    namespace = {"model": model, "x": torch.ones(2, 3)}
    with pytest.raises(SaveError, match=r"'list' object has no \.save\(\).*lenslab\.save\(value\)"):
        exec("with model.trace(x):\n    kept = [].save()\n    kept.append(1)\n", namespace)
    with pytest.raises(AttributeError) as error:
        exec("with model.trace(x):\n    (3).save()", namespace)
    assert isinstance(error.value, LensError)
    last = traceback.extract_tb(error.value.__traceback__)[-1]
    assert last.filename == "<string>" and last.lineno == 2
    assert_clean(net)
    exec("with model.trace(x):\n    h = model[0].output.save()\n", namespace)  # tensors still do
    assert namespace["h"].shape == (2, 5)


# -- which blocks are rewritten: only those that need it -------------------------------------------


def needs_rewrite(code: str) -> bool:
    return rewrite_saves(ast.parse(textwrap.dedent(code)).body) is not None


@pytest.mark.parametrize(
    "code",
    [
        "h = model.layers[0].output.save()",
        "h = model.layers[0].output\nh.save()\nlogits = model.output.logits.save()",
        "h = model.layers[0].output[:, -1]\nn = h.norm(dim=-1).save()\nm = (h * 2).save()",
        "probs = model.layers_output[3].softmax(-1).save()",
        "stacked = torch.stack([model.a.output, model.b.output]).save()",
        "x = model.a.output\ny = x.clone()\ny.save()",
        "logits = model.output.logits\nlogits = logits.save()",
        "model.save_pretrained('x')\nh = model.a.output",
    ],
)
def test_blocks_that_save_only_traced_values_run_as_compiled(code):
    assert not needs_rewrite(code)


@pytest.mark.parametrize(
    "code",
    [
        "kept = list().save()",
        "kept = [].save()",
        "kept = {}.save()",
        "n = model.a.output.sum().item().save()",
        "out = tracer.result.save()",
        "h.save()\nh = model.a.output",  # h is the outer value on that line
        "h = model.a.output\nh = h.shape\nh.save()",
        "h = h + 1\nh.save()",
        "a = b.clone()\nb = a.clone()\nb.save()",
        "for h in layers:\n    h.save()",
        "shape = model.a.output.shape.save()",
    ],
)
def test_blocks_that_save_anything_else_are_rewritten(code):
    assert needs_rewrite(code)
