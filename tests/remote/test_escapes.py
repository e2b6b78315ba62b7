"""Every escape found against ``lenslab serve``, in every kind of body a remote block has.

Escapes whose attribute is visible in the source are refused before the job runs; those that
use an allowed name on the wrong object (``.to`` is fine on a tensor, not on a module) are
refused at run time, also inside invokes, ``edit()`` bodies, sessions, generation and step
loops, which the engine compiles itself. After all of them the hosted model still gives the
same logits as a local copy.
"""

from __future__ import annotations

import runpy
import textwrap

import pytest
import torch

from lenslab.remote import RemoteCodeError

# Each kind of body, with {X} where the escape goes (it runs at least once there).
KINDS = {
    "main body": "with model.trace('hello', remote=True):\n    {X}\n",
    "invoke": (
        "with model.trace(remote=True) as tracer:\n    with tracer.invoke('hello'):\n        {X}\n"
    ),
    "edit": (
        "with model.session(remote=True):\n"
        "    with model.edit() as edited:\n"
        "        {X}\n"
        "    with edited.trace('hello'):\n"
        "        out = edited.output.logits.save()\n"
    ),
    "session": ("with model.session(remote=True):\n    with model.trace('hello'):\n        {X}\n"),
    "generate": "with model.generate('hello', max_new_tokens=2, remote=True):\n    {X}\n",
    "step loop": (
        "with model.generate('hello', max_new_tokens=2, remote=True) as tracer:\n"
        "    for step in tracer.all():\n"
        "        {X}\n"
    ),
}

# Visible in the source: refused before anything runs.
STATIC = {
    "tokenizer save": ("model.tokenizer.backend_tokenizer.save({path!r})", "backend_tokenizer"),
    "config file read": (
        "leaked = model.config.from_json_file({path!r}).to_dict()",
        "from_json_file",
    ),
    "set_submodule by class": (
        'torch.nn.Module.set_submodule(model, "model.layers.0.mlp.act_fn", torch.nn.ReLU())',
        "set_submodule",
    ),
    "set_submodule on the model": (
        'model.set_submodule("model.layers.0.mlp.act_fn", torch.nn.ReLU())',
        "set_submodule",
    ),
}

# Allowed names on the wrong object: refused when the line runs.
RUNTIME = {
    "module .to": ("model.model.layers[0].mlp.to(torch.float64)", '"to" of model.model'),
    "module requires_grad_": (
        "model.model.layers[0].mlp.requires_grad_(False)",
        '"requires_grad_" of model.model',
    ),
    "config update": ('model.config.update({"vocab_size": 3})', '"update" of a'),
}


def run(tmp_path, model, kind: str, line: str):
    file = tmp_path / "block.py"
    code = KINDS[kind].replace("{X}", line)
    body = textwrap.indent(code, "    ") + "    return locals()\n"
    file.write_text("import torch\n\n\ndef run(model):\n" + body)
    return runpy.run_path(str(file))["run"](model)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("escape", STATIC)
def test_visible_escapes_are_refused_before_running(server, tiny_local, tmp_path, kind, escape):
    target = tmp_path / "written-by-the-job.json"
    target.write_text('{"secret": "only on the server"}')
    line, attribute = STATIC[escape]
    with pytest.raises(RemoteCodeError, match="rejected before running") as caught:
        run(tmp_path, tiny_local, kind, line.format(path=str(target)))
    assert f'".{attribute}" is not available' in str(caught.value)
    assert target.read_text() == '{"secret": "only on the server"}'


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("escape", RUNTIME)
def test_wrong_object_escapes_are_refused_at_run_time(server, tiny_local, tmp_path, kind, escape):
    line, named = RUNTIME[escape]
    with pytest.raises(RemoteCodeError, match="stopped at line") as caught:
        run(tmp_path, tiny_local, kind, line)
    assert named in str(caught.value)


def test_attaching_a_module_to_the_hosted_model_is_refused_before_running(
    server, tiny_local, tmp_path
):
    """Locally ``envoy.name = module`` attaches the module to the model's tree; remotely the
    hosted model must stay as it is."""
    line = "model.model.layers[0].mlp.act_fn = torch.nn.ReLU()"
    with pytest.raises(RemoteCodeError, match="rejected before running") as caught:
        run(tmp_path, tiny_local, "invoke", line)
    assert 'assigning ".act_fn" is not allowed' in str(caught.value)
    assert not isinstance(tiny_local._model.model.layers[0].mlp.act_fn, torch.nn.ReLU)


def test_after_every_escape_the_model_answers_as_a_local_copy(server, tiny_local):
    with tiny_local.trace("The cat sat", remote=True):
        remote = tiny_local.output.logits.save()
    with tiny_local.trace("The cat sat"):
        local = tiny_local.output.logits.save()
    assert torch.allclose(remote, local, atol=1e-5)


HONEST = {
    "main body": "text = model.tokenizer.decode(model.tokenizer.encode('hi')); print(text)",
    "invoke": "h = model.model.layers[0].output.save(); n = model.config.num_hidden_layers",
    "edit": "model.model.layers[0].output[:] = model.model.layers[0].output * 1.0",
    "session": "top = model.output.logits[0, -1].topk(3).indices.tolist()",
    "generate": "ids = model.generator.output.save(); size = model.config.hidden_size",
    "step loop": "model.model.layers[1].output[:, -1] += 0.0",
}


@pytest.mark.parametrize("kind", KINDS)
def test_honest_code_runs_in_every_kind_of_body(server, tiny_local, tmp_path, kind):
    names = run(tmp_path, tiny_local, kind, HONEST[kind])
    if kind == "edit":
        assert names["out"].shape[-1] == tiny_local.config.vocab_size
