"""The run-time guards alone hold in every kind of body: the issue's escapes, run through the
worker's own job runner with the up-front attribute check given nothing to refuse, are each
stopped when their line runs, naming the attribute, and nothing is written or swapped."""

from __future__ import annotations

import pytest
import torch

from lenslab.remote.protocol import pack, read_document
from lenslab.server import compiler
from lenslab.server.integrity import differences, snapshot
from lenslab.server.runner import run_job

from ..remote.jobs import document

ARGS = {"$dict": [["args", ["hello"]], ["kwargs", {"$dict": []}]]}
NONE = {"$dict": [["args", []], ["kwargs", {"$dict": []}]]}
GENERATE = {"$dict": [["args", ["hello"]], ["kwargs", {"$dict": [["max_new_tokens", 2]]}]]}

# kind: (method, inputs, source with {X} where the escape goes)
KINDS = {
    "main body": ("trace", ARGS, "with lenslab_remote_block():\n    {X}\n"),
    "invoke": (
        "trace",
        NONE,
        "with lenslab_remote_block() as tracer:\n    with tracer.invoke('hello'):\n        {X}\n",
    ),
    "edit": (
        "session",
        NONE,
        "with lenslab_remote_block():\n    with model.edit() as edited:\n        {X}\n"
        "    with edited.trace('hello'):\n        out = edited.output.logits.save()\n",
    ),
    "session": (
        "session",
        NONE,
        "with lenslab_remote_block():\n    with model.trace('hello'):\n        {X}\n",
    ),
    "generate": ("generate", GENERATE, "with lenslab_remote_block():\n    {X}\n"),
    "step loop": (
        "generate",
        GENERATE,
        "with lenslab_remote_block() as tracer:\n    for step in tracer.all():\n        {X}\n",
    ),
}

ESCAPES = {
    "tokenizer save": ("model.tokenizer.backend_tokenizer.save({path!r})", "backend_tokenizer"),
    "config file read": ("x = model.config.from_json_file({path!r}).to_dict()", "from_json_file"),
    "set_submodule by class": (
        'torch.nn.Module.set_submodule(model, "model.layers.0.mlp.act_fn", torch.nn.ReLU())',
        "set_submodule",
    ),
    "set_submodule on the model": (
        'model.set_submodule("model.layers.0.mlp.act_fn", torch.nn.ReLU())',
        "set_submodule",
    ),
}


@pytest.fixture(scope="module")
def hosted(tiny_local):
    compiler.install()  # as every worker does at start-up
    model = tiny_local._copy()
    model._hosted = True
    return model


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("escape", ESCAPES)
def test_the_run_time_guards_alone_stop_each_escape(hosted, tmp_path, kind, escape):
    target = tmp_path / "target.json"
    target.write_text('{"secret": 1}')
    method, inputs, source = KINDS[kind]
    line, attribute = ESCAPES[escape]
    doc = document(
        method=method,
        inputs=inputs,
        source=source.replace("{X}", line.format(path=str(target))),
        variables={"torch": {"$module": "torch"}},
    )
    pristine = snapshot(hosted)
    reply = read_document(run_job(hosted, pack(doc, {}), "f" * 16, 1 << 20, frozenset()))
    assert reply["kind"] == "error" and reply["category"] == "code", reply
    assert "stopped at line" in reply["message"] and f'"{attribute}"' in reply["message"]
    assert target.read_text() == '{"secret": 1}'
    assert differences(pristine, snapshot(hosted)) == []
    assert not isinstance(hosted._module.model.layers[0].mlp.act_fn, torch.nn.ReLU)
