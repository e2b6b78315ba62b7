"""The per-type allow-lists, on the real objects a block reaches (the tiny model's wrapper,
envoys, tokenizer and config): keyed by class identity, so a renamed class cannot slip by."""

from __future__ import annotations

import pytest
import torch

from lenslab.server.allowlist import read_problem, static_refusals
from lenslab.server.worker import module_members


def problem(obj, name):
    return read_problem(obj, name, lambda obj, name: False)


@pytest.mark.parametrize(
    ("reach", "name"),
    [
        (lambda m: m.tokenizer, "backend_tokenizer"),
        (lambda m: m.tokenizer, "save_pretrained"),
        (lambda m: m.config, "from_json_file"),
        (lambda m: m.config, "update"),
        (lambda m: m, "set_submodule"),
        (lambda m: m.model.layers[0].mlp, "to"),
        (lambda m: m.model.layers[0].mlp, "register_forward_hook"),
        (lambda m: torch.nn.Module, "set_submodule"),
        (lambda m: torch.ones(1), "untyped_storage"),
        (lambda m: torch.ones(1), "data"),
        (lambda m: torch.ones(1), "register_hook"),
        (lambda m: lambda: 0, "func_globals"),
    ],
)
def test_refused(tiny_local, reach, name):
    found = problem(reach(tiny_local), name)
    assert found is not None and f'"{name}"' in found


@pytest.mark.parametrize(
    ("reach", "name"),
    [
        (lambda m: m.tokenizer, "decode"),
        (lambda m: m.tokenizer, "encode"),
        (lambda m: m.config, "hidden_size"),
        (lambda m: m, "trace"),
        (lambda m: m, "tokenizer"),
        (lambda m: m.model.layers[0], "mlp"),
        (lambda m: m.model.layers[0].mlp, "output"),
        (lambda m: m.model.layers[0].self_attn, "head_dim"),
        (lambda m: m.lm_head, "weight"),
        (lambda m: torch.ones(1), "softmax"),
        (lambda m: torch.ones(1), "add_"),
        (lambda m: torch.ones(1), "save"),
        (lambda m: torch.ones(3).topk(2), "indices"),
        (lambda m: "text", "upper"),
    ],
)
def test_allowed(tiny_local, reach, name):
    assert problem(reach(tiny_local), name) is None


def test_a_mistyped_module_path_is_left_to_the_engine(tiny_local):
    assert problem(tiny_local.model, "layer") is None  # raises ModulePathError when read


def test_the_up_front_list_holds_the_escapes_and_spares_honest_names(tiny_local):
    refused = static_refusals(tiny_local, module_members())
    assert {"backend_tokenizer", "from_json_file", "set_submodule", "register_hook"} <= refused
    honest = {"to", "save", "output", "decode", "layers", "softmax", "hidden_size", "logits"}
    assert not (honest | {"past_key_values", "topk", "indices", "tolist", "invoke"}) & refused


class Forwarding(torch.nn.Module):
    """A wrapper that answers unknown names itself (as adapter wrappers do)."""

    def __getattr__(self, name):
        if name.startswith("_"):
            return super().__getattr__(name)
        return lambda: "changed the weights"


def test_a_module_that_forwards_unknown_names_gets_no_benefit_of_the_doubt():
    from lenslab import NNsight

    wrapped = NNsight(torch.nn.Sequential(Forwarding()))
    assert problem(wrapped[0], "merge_and_unload") is not None
    assert problem(wrapped, "layer") is None  # a plain module: the engine explains the typo
