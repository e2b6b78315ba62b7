"""The kernel side of the sidebar without a browser: requests, cell events, saved values."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lenslab.comms import Sidebar
from lenslab.comms.protocol import build_request, parse_reply


class FakeModel:
    def __init__(self, tree: dict[str, Any]) -> None:
        self.tree = tree


class FakeInspector:
    """The in-memory Inspector: models are FakeModel, values are lists."""

    def __init__(self) -> None:
        self.scans: list[bool] = []

    def is_model(self, value):
        return isinstance(value, FakeModel)

    def is_value(self, value):
        return isinstance(value, list)

    def describe(self, name, model):
        return {"name": name, "cls": "Fake", "wrapper": "FakeModel", "params": len(model.tree),
                "device": "cpu", "dtype": "float32"}

    def children(self, model, path, *, scan):
        self.scans.append(scan)
        node = model.tree
        for key in path:
            node = node[key]
        return [{"key": k, "path": [*path, k], "cls": "M", "children": len(v), "calls": 0,
                 "shape": "[1]" if scan else None, "kind": "module"} for k, v in node.items()]

    def find(self, model, query, limit):
        return [{"key": query, "path": [query], "cls": "M", "children": 0, "calls": 0,
                 "shape": None, "kind": "module"}]

    def summarize(self, name, value):
        return {"name": name, "kind": "list", "shape": [len(value)], "dtype": None,
                "min": min(value), "mean": sum(value) / len(value), "max": max(value),
                "spark": list(value), "heat": None}


def ask(sidebar: Sidebar, method: str, **params: Any) -> Any:
    reply = parse_reply(sidebar.handle(build_request("q", method, **params)))
    assert reply["ok"], reply.get("error")
    return reply["result"]


@pytest.fixture
def sidebar():
    namespace = {"model": FakeModel({"layers": {"0": {"mlp": {}}}}), "x": 3}
    return Sidebar(namespace, FakeInspector(), "9.9")


def cell(source: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(raw_cell=source))


def test_hello_reports_version_and_busy(sidebar):
    assert ask(sidebar, "hello") == {"protocol": 1, "lenslab": "9.9", "busy": False}
    sidebar.before_cell()
    assert ask(sidebar, "hello")["busy"] is True
    sidebar.after_cell(cell("pass"))
    assert ask(sidebar, "hello")["busy"] is False


def test_models_follow_the_namespace(sidebar):
    assert [m["name"] for m in ask(sidebar, "models")] == ["model"]
    sidebar.namespace["other"] = FakeModel({})
    sidebar.namespace["_hidden"] = FakeModel({})
    sidebar.namespace["alias"] = sidebar.namespace["model"]  # same object: listed once
    assert [m["name"] for m in ask(sidebar, "models")] == ["model", "other"]
    del sidebar.namespace["model"]
    assert [m["name"] for m in ask(sidebar, "models")] == ["other", "alias"]


def test_children_scan_only_while_idle(sidebar):
    nodes = ask(sidebar, "children", model="model", path=["layers"])
    assert nodes == [{"key": "0", "path": ["layers", "0"], "cls": "M", "children": 1,
                      "calls": 0, "shape": "[1]", "kind": "module"}]
    sidebar.before_cell()
    assert ask(sidebar, "children", model="model", path=["layers"])[0]["shape"] is None
    assert sidebar.inspector.scans == [True, False]


def test_find_needs_a_query(sidebar):
    assert ask(sidebar, "find", model="model", query="  ") == []
    assert ask(sidebar, "find", model="model", query="mlp")[0]["key"] == "mlp"


def test_errors_come_back_as_replies(sidebar):
    reply = sidebar.handle(build_request("a", "children", model="gone", path=[]))
    assert reply == {"v": 1, "type": "reply", "id": "a", "ok": False,
                     "error": "LookupError: no lenslab model named 'gone' in this kernel any more"}
    reply = sidebar.handle({"v": 1, "type": "request", "id": "b", "method": "nope"})
    assert reply["ok"] is False and reply["id"] == "b" and "unknown method" in reply["error"]
    assert sidebar.handle("garbage")["ok"] is False


def test_saved_values_come_from_the_last_trace_of_the_cell(sidebar):
    assert ask(sidebar, "saved") == {"trace": 0, "values": []}
    first, second = [1.0, 2.0], [5.0, 7.0]
    sidebar.before_cell()
    sidebar.trace_closed([first])
    sidebar.namespace["hidden"] = second
    sidebar.trace_closed([second, [0.0]])
    assert ask(sidebar, "saved")["trace"] == 0  # nothing is summarized while the cell runs
    sidebar.after_cell(cell("..."))
    saved = ask(sidebar, "saved")
    assert saved["trace"] == 1
    assert [(v["name"], v["max"]) for v in saved["values"]] == [("hidden", 7.0), ("saved[1]", 0.0)]
    sidebar.before_cell()
    sidebar.after_cell(cell("print(1)"))  # no trace: the panel keeps the last one
    assert ask(sidebar, "saved")["trace"] == 1


def test_without_a_trace_listener_a_saving_cell_reports_what_it_bound(sidebar):
    sidebar.namespace["old"] = [1.0]
    sidebar.before_cell()
    sidebar.namespace["h"] = [2.0, 4.0]
    sidebar.after_cell(cell("with model.trace('x'):\n    h = model.layers[0].output.save()"))
    saved = ask(sidebar, "saved")
    assert saved["trace"] == 1 and [v["name"] for v in saved["values"]] == ["h"]
    sidebar.before_cell()
    sidebar.namespace["k"] = [1.0]
    sidebar.after_cell(cell("k = [1.0]"))  # no save(): not a trace result
    assert ask(sidebar, "saved")["trace"] == 1


def test_values_saved_by_lenslab_widgets_are_kept_apart_from_the_users(sidebar):
    sidebar.before_cell()
    sidebar.namespace["h"] = [1.0, 3.0]
    sidebar.trace_closed([sidebar.namespace["h"]])
    sidebar.after_cell(cell("with model.trace('x'):\n    h = model.lm_head.output.save()"))
    sidebar.before_cell()  # a widget's cell: its own traces must not replace the user's values
    sidebar.trace_closed([[9.0]], origin="PatchingGrid")
    sidebar.trace_closed([[4.0], [5.0]], origin="PatchingGrid")
    sidebar.after_cell(cell("grid = PatchingGrid(model, clean, corrupted, ' Mary', ' John')"))
    saved = ask(sidebar, "saved")
    assert saved["trace"] == 2
    assert [(v["name"], v["max"], v["origin"]) for v in saved["values"]] == [
        ("h", 3.0, ""),
        ("saved[0]", 4.0, "PatchingGrid"),
        ("saved[1]", 5.0, "PatchingGrid"),
    ]
    sidebar.before_cell()  # the user's next trace replaces only the user's values
    sidebar.trace_closed([[2.0]])
    sidebar.trace_closed([], origin="activation_norms")  # saved nothing: hides nothing
    sidebar.after_cell(cell("..."))
    values = ask(sidebar, "saved")["values"]
    assert [(v["max"], v["origin"]) for v in values] == [
        (2.0, ""),
        (4.0, "PatchingGrid"),
        (5.0, "PatchingGrid"),
    ]
