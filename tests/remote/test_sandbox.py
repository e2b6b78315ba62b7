"""Each sandbox escape is rejected before anything runs, with the offending line; runtime
guards and the worker's model check catch what only shows at run time."""

from __future__ import annotations

import runpy
import textwrap

import pytest
import torch

from lenslab.remote import RemoteCodeError

ESCAPES = {
    "open": 'f = open("/etc/passwd")',
    "import os": "import os",
    "import subprocess": "import subprocess",
    "from os import": "from os import system",
    "dunder import": '__import__("os")',
    "subclasses": "found = ().__class__.__subclasses__()",
    "globals of a function": "def f():\n    pass\ng = f.__globals__",
    "builtins": "b = __builtins__",
    "getattr": 'getattr(model, "_module")',
    "eval": 'eval("1 + 1")',
    "exec": 'exec("x = 1")',
    "compile": 'compile("1", "x", "eval")',
    "globals()": "g = globals()",
    "vars()": "v = vars()",
    "type()": "t = type(model)",
    "breakpoint": "breakpoint()",
    "frames": "frame = (x for x in []).gi_frame.f_back",
    "str.format": 'leak = "{0.__class__}".format(1)',
    "private attribute": "m = model._module",
    "torch.save": 'torch.save(torch.ones(1), "/tmp/lenslab-escape")',
    "torch.load": 'torch.load("/tmp/lenslab-escape")',
    "from torch import load": "from torch import load",
    "tensor storage": "s = model.model.layers[0].output.untyped_storage()",
    "numpy": "a = model.model.layers[0].output.numpy()",
    "hooks": "model.model.layers[0].register_forward_hook(print)",
    "save_pretrained": 'model.tokenizer.save_pretrained("/tmp/lenslab-escape")',
    "config write": "model.config.vocab_size = 3",
    "class": "class A:\n    pass",
}


def run_block(tmp_path, model, body: str, name: str = "block") -> dict:
    """Run ``body`` in a remote trace written in a real file (the client reads its source)."""
    file = tmp_path / f"{name}.py"
    file.write_text(
        "import torch\n\n\ndef run(model):\n"
        "    with model.trace('hello', remote=True):\n"
        "        print('this never prints')\n"
        + textwrap.indent(body, " " * 8)
        + "\n    return locals()\n"
    )
    return runpy.run_path(str(file))["run"](model)


@pytest.mark.parametrize("body", ESCAPES.values(), ids=ESCAPES.keys())
def test_each_escape_is_rejected_before_running(server, tiny_local, tmp_path, capsys, body):
    with pytest.raises(RemoteCodeError, match="rejected before running") as caught:
        run_block(tmp_path, tiny_local, body)
    first_line = body.splitlines()[0].strip()
    assert first_line.split("(")[0][:20] in str(caught.value) or "line" in str(caught.value)
    assert "this never prints" not in capsys.readouterr().out


def test_runtime_guards_stop_calls_that_change_the_model(server, tiny_local, tmp_path):
    with pytest.raises(RemoteCodeError, match=r'"\.train" is not available'):
        run_block(tmp_path, tiny_local, "model.model.train()")
    with pytest.raises(RemoteCodeError, match="weights are read-only"):
        run_block(tmp_path, tiny_local, "model.lm_head.weight[:] = 0", "weights")


def test_a_job_that_changes_the_model_fails_and_the_next_sees_it_unchanged(
    server, tiny_local, tmp_path
):
    with pytest.raises(RemoteCodeError, match="changed the hosted model"):
        body = "w = model.lm_head.weight\nwith torch.no_grad():\n    w.mul_(0)"
        run_block(tmp_path, tiny_local, body)
    with tiny_local.trace("hello", remote=True):
        logits = tiny_local.output.logits.save()
    with tiny_local.trace("hello"):
        expected = tiny_local.output.logits.save()
    assert torch.allclose(logits, expected, atol=1e-5)


def test_allowed_code_runs(server, tiny_local, tmp_path):
    names = run_block(
        tmp_path,
        tiny_local,
        "import math\nimport torch.nn.functional as F\n"
        "h = model.model.layers[1].output\n"
        "model.model.layers[2].output[:] += 0\n"
        "probs = F.softmax(model.output.logits[0, -1], dim=-1).save()\n"
        "top = sorted(range(5), key=lambda i: -i)[0] + int(math.sqrt(16))\n",
        "allowed",
    )
    assert names["top"] == 8
    assert abs(float(names["probs"].sum()) - 1) < 1e-4
