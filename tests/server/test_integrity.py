"""Model integrity by identity: a module swapped at the same path, a weight written in place or a
hook left behind is found after the job, named in its error, and the next job runs on pristine
weights in a fresh worker. The raw (test-mode) server lets the block do it directly, as code
past the Python layer could; ``snapshot``/``differences`` are also checked on their own."""

from __future__ import annotations

import httpx
import pytest
import torch

from lenslab.remote import RemoteCodeError
from lenslab.server.integrity import differences, snapshot


def worker_pid(server) -> int:
    return httpx.get(f"{server.url}/v1/models", timeout=10).json()["models"][0]["pid"]


def same_as_local(model) -> None:
    with model.trace("The cat sat", remote=True):
        remote = model.output.logits.save()
    with model.trace("The cat sat"):
        local = model.output.logits.save()
    assert torch.allclose(remote, local, atol=1e-5)


def test_a_swapped_module_is_named_and_undone(raw_server, tiny_local):
    before = worker_pid(raw_server)
    swapped = r"model\.layers\.0\.mlp\.act_fn: object \(replaced\)"
    with pytest.raises(RemoteCodeError, match=swapped):
        with tiny_local.trace("hello", remote=True):
            import torch as t

            tiny_local._module.set_submodule("model.layers.0.mlp.act_fn", t.nn.ReLU())
    same_as_local(tiny_local)
    assert worker_pid(raw_server) != before


def test_an_in_place_write_and_a_hook_are_named(raw_server, tiny_local):
    with pytest.raises(RemoteCodeError, match=r"lm_head\.weight: version"):
        with tiny_local.trace("hello", remote=True):
            import torch as t

            with t.no_grad():
                tiny_local._module.lm_head.weight.mul_(1.0)
    with pytest.raises(RemoteCodeError, match=r"module model\.norm: hooks"):
        with tiny_local.trace("hello", remote=True):
            tiny_local._module.model.norm.register_forward_hook(lambda *args: None)
    same_as_local(tiny_local)


def test_snapshot_sees_identity_not_names(tiny_local):
    model = tiny_local._copy()
    pristine = snapshot(model)
    assert differences(pristine, snapshot(model)) == []
    mlp = model._module.model.layers[1].mlp
    original = mlp.act_fn
    try:
        mlp.act_fn = type(original)()  # same class, same (no) parameters: a different object
        (found,) = differences(pristine, snapshot(model))
        assert found.startswith("module model.layers.1.mlp.act_fn: object (replaced)")
    finally:
        mlp.act_fn = original
    weight = model._module.lm_head.weight
    with torch.no_grad():
        weight.requires_grad_(False)
    try:
        assert differences(pristine, snapshot(model)) == ["parameter lm_head.weight: requires_grad"]
    finally:
        weight.requires_grad_(True)
    assert differences(pristine, snapshot(model)) == []
    kept = weight.detach().clone()
    try:
        weight.data.zero_()  # no version bump: .data is a separate view
        assert differences(pristine, snapshot(model)) == [
            "parameter lm_head.weight: values (sampled)"
        ]
    finally:
        weight.data.copy_(kept)
    assert differences(pristine, snapshot(model)) == []
