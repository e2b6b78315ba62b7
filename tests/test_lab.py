"""The sidebar's torch side (lenslab._lab): models, module trees with scanned shapes, values."""

from __future__ import annotations

import torch

from lenslab import NNsight
from lenslab._lab import TorchInspector, origin_of, path_matches, saved_of
from lenslab.engine import observers


def test_describe_children_and_find_on_smollm2(smollm2):
    inspector = TorchInspector()
    info = inspector.describe("model", smollm2)
    assert info == {"name": "model", "cls": "LlamaForCausalLM", "wrapper": "LanguageModel",
                    "params": 134515008, "device": "cpu", "dtype": "float32"}
    top = modules(inspector.children(smollm2, [], scan=True))
    assert [(n["key"], n["cls"]) for n in top] == [("model", "LlamaModel"), ("lm_head", "Linear")]
    layers = modules(inspector.children(smollm2, ["model", "layers"], scan=True))
    assert len(layers) == 30 and layers[5]["path"] == ["model", "layers", "5"]
    assert layers[5]["shape"] == "[1, 2, 576]" and layers[5]["children"] == 4
    attention = inspector.children(smollm2, ["model", "layers", "5"], scan=False)[0]
    assert attention["key"] == "self_attn" and attention["shape"].startswith("([1, 2, 576]")
    found = inspector.find(smollm2, "layers[5].ml", limit=10)
    assert [n["path"] for n in found][:2] == [["model", "layers", "5", "mlp"],
                                              ["model", "layers", "5", "mlp", "gate_proj"]]


def test_a_tiny_model_has_a_tree_and_no_scan():
    net = NNsight(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))
    nodes = modules(TorchInspector().children(net, [], scan=True))
    assert [(n["key"], n["shape"], n["children"]) for n in nodes] == [("0", None, 0),
                                                                       ("1", None, 0)]


def modules(nodes):
    return [node for node in nodes if node["kind"] == "module"]


def test_a_modules_calls_are_listed_under_it_with_their_code(smollm2):
    """The names are .source's own, and the inserted path reads the same value as .output."""
    inspector = TorchInspector()
    path = ["model", "layers", "5", "self_attn"]
    nodes = inspector.children(smollm2, path, scan=False)
    calls = [node for node in nodes if node["kind"] == "call"]
    attention = smollm2.model.layers[5].self_attn
    assert [node["key"] for node in calls] == list(attention.source)
    parent = modules(inspector.children(smollm2, path[:-1], scan=False))[0]
    assert parent["key"] == "self_attn" and parent["calls"] == len(calls) > 0
    o_proj = next(node for node in calls if node["key"] == "self_o_proj_0")
    assert o_proj["path"] == [*path, "source", "self_o_proj_0"] and o_proj["children"] == 0
    assert "self.o_proj(" in o_proj["cls"]
    with smollm2.trace("The Eiffel Tower"):
        via_source = attention.source.self_o_proj_0.output.save()
        via_module = attention.o_proj.output.save()
    assert torch.equal(via_source, via_module)


def test_a_module_without_python_source_has_no_calls():
    scripted = torch.jit.script(torch.nn.Linear(4, 3))
    net = NNsight(torch.nn.Sequential(torch.nn.ReLU()))
    net._module.add_module("compiled", scripted)
    nodes = TorchInspector().children(net, [], scan=False)
    compiled = next(node for node in nodes if node["key"] == "compiled")
    assert compiled["calls"] == 0


def test_summaries_are_small_and_json_safe():
    inspector = TorchInspector()
    grid = torch.arange(2 * 40 * 100, dtype=torch.float32).reshape(2, 40, 100)
    summary = inspector.summarize("h", grid)
    assert summary["shape"] == [2, 40, 100] and summary["dtype"] == "float32"
    assert (summary["min"], summary["max"]) == (0.0, 7999.0)
    heat = summary["heat"]
    assert len(heat) == 16 and {len(row) for row in heat} == {48} and summary["spark"] is None
    row = inspector.summarize("r", torch.tensor([[1.0, float("nan"), 3.0]]))
    assert row["spark"] == [1.0, 0.0, 3.0] and row["mean"] == 2.0
    assert inspector.summarize("n", 5)["kind"] == "int = 5"
    assert inspector.summarize("m", torch.empty(3, device="meta"))["min"] is None


def test_scans_are_not_reported_as_traces():
    class Closed:
        def __init__(self, scan: bool) -> None:
            self._scan, self.saved = scan, [1]

    assert saved_of(Closed(False)) == [1] and saved_of(Closed(True)) is None


def test_a_failing_trace_listener_never_breaks_anything():
    seen = []

    def broken(tracer):
        raise RuntimeError("boom")

    remove_broken = observers.add_trace_listener(broken)
    remove_seen = observers.add_trace_listener(seen.append)
    observers.trace_closed("t")
    remove_broken()
    remove_seen()
    observers.trace_closed("u")
    assert seen == ["t"]


def test_the_filter_matches_dotted_and_bracket_forms(smollm2):
    inspector = TorchInspector()
    bracket = [n["path"] for n in inspector.find(smollm2, "layers[5]", limit=50)]
    for query in ("model.layers.5", "layers.5", "model.model.layers[5]", " LAYERS[5] "):
        assert [n["path"] for n in inspector.find(smollm2, query, limit=50)] == bracket, query
    # the block, its attention (5 modules), its MLP (5) and two norms
    assert bracket[0] == ["model", "layers", "5"] and len(bracket) == 13
    assert all(p[:3] == ["model", "layers", "5"] for p in bracket)  # not layers.50-59
    assert [n["path"] for n in inspector.find(smollm2, "layers.5.mlp.up", limit=5)] == [
        ["model", "layers", "5", "mlp", "up_proj"]
    ]
    assert path_matches("model.model.layers[12].mlp", "layers[1]") is False
    assert path_matches("model.model.layers[12].mlp", "layers.1") is False
    assert path_matches("model.model.layers[12].mlp", "layers[12].m") is True


def test_traces_run_by_widgets_and_tools_are_labelled_by_origin(smollm2):
    from lenslab import logit_lens
    from lenslab.widgets import PatchingGrid, live_logit_lens

    seen = []
    remove = observers.add_trace_listener(lambda tracer: seen.append(origin_of(tracer)))
    try:
        with smollm2.trace("Hello"):
            smollm2.lm_head.output.save()
        logit_lens(smollm2, "Hello", layers=[0])
        live_logit_lens(smollm2, "Hello", display=False)
        grid = PatchingGrid(smollm2, "a b", "a c", " b", " c")
        grid.patch(0, 0)
    finally:
        remove()
    assert seen == ["", "logit_lens", "live_logit_lens", "PatchingGrid", "PatchingGrid"]
