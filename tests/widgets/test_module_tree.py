"""ModuleTree on the real SmolLM2: the scan's tree against the module tree and plain hooks."""

from __future__ import annotations

import pytest
import torch

from lenslab.widgets import ModuleTree

from ..conftest import hooked
from .conftest import front_end_sets

PROMPT = "The quick brown fox"


@pytest.fixture(scope="module")
def tree(smollm2):
    return ModuleTree(smollm2, PROMPT)


def written(dotted: str, hf: torch.nn.Module) -> str:
    """``model.layers.5.mlp`` -> ``model.model.layers[5].mlp`` (how a trace writes it)."""
    path, module = "model", hf
    for part in dotted.split(".") if dotted else []:
        indexed = isinstance(module, (torch.nn.ModuleList, torch.nn.Sequential))
        path += f"[{part}]" if indexed else f".{part}"
        module = getattr(module, part) if not indexed else module[int(part)]
    return path


def test_every_module_with_its_class_and_parameter_count(tree, smollm2):
    hf = smollm2._model
    expected = {
        written(name, hf): (type(m).__name__, sum(p.numel() for p in m.parameters()))
        for name, m in hf.named_modules()
    }
    got = {node.path: (node.kind, node.parameters) for node in tree.root.walk()}
    assert got == expected
    assert tree.root.parameters == sum(p.numel() for p in hf.parameters())
    assert tree.tree == tree.root.to_json()  # what the front end receives


def test_output_shapes_match_a_real_forward(tree, smollm2):
    hf = smollm2._model
    modules = {written(name, hf): m for name, m in hf.named_modules() if name}
    ids = smollm2.tokenizer(PROMPT, return_tensors="pt")
    with hooked(modules) as seen, torch.no_grad():
        hf(**ids)
    for node in tree.root.walk():
        value = seen.get(node.path)
        if isinstance(value, torch.Tensor):
            assert node.output == str(tuple(value.shape)), node.path
        elif value is None and node.path != "model":
            assert node.output is None, node.path  # never called (a ModuleList)
    attention = tree.root.find("model.model.layers[0].self_attn")
    assert attention.output.startswith(f"((1, {ids['input_ids'].shape[1]}, 576), ")


def test_a_click_selects_and_the_expression_reads_that_module(tree, smollm2):
    front_end_sets(tree, selected="model.model.layers[5].mlp")
    assert tree.selected == "model.model.layers[5].mlp"
    assert tree.expression == "model.model.layers[5].mlp.output"
    assert tree.node.kind == "LlamaMLP"
    with smollm2.trace(PROMPT):
        value = eval(tree.expression, {"model": smollm2}).save()
    with hooked({"mlp": smollm2._model.model.layers[5].mlp}) as seen, torch.no_grad():
        smollm2._model(**smollm2.tokenizer(PROMPT, return_tensors="pt"))
    torch.testing.assert_close(value, seen["mlp"])


def test_an_unknown_path_is_refused_and_the_html_fallback_shows_the_tree(tree):
    front_end_sets(tree, selected="model.model.layers[5].mlp")
    with pytest.raises(Exception, match="not a module"):
        tree.selected = "model.nope"
    assert tree.selected == "model.model.layers[5].mlp"
    data, _ = tree._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert (
        "LlamaMLP" in data["text/html"] and "model.model.layers[5].mlp.output" in data["text/html"]
    )
