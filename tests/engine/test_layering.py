"""The engine's imports point one way: no module imports, directly or through others, one that
imports it back.

Every import counts, also those inside functions (a deferred import still ties two modules
together) and those under ``if TYPE_CHECKING:`` (they never run, but a type named from above
is a dependency all the same: a lower module names what it needs of a higher one's objects by
a small protocol in engine/handles.py instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import lenslab.engine

ENGINE = Path(lenslab.engine.__file__).parent


def engine_imports(path: Path, modules: set[str]) -> set[str]:
    """The engine modules that ``path`` imports (relative or absolute, at any depth)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                parts = (node.module or "").split(".")
            elif node.level == 0 and (node.module or "").startswith("lenslab.engine"):
                parts = (node.module or "").split(".")[2:]
            elif node.level == 2 and (node.module or "").startswith("engine"):
                parts = (node.module or "").split(".")[1:]
            else:
                continue
            if parts and parts[0]:
                found.add(parts[0])
            else:  # ``from . import a, b``
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lenslab.engine."):
                    found.add(alias.name.split(".")[2])
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {p.stem: p for p in ENGINE.glob("*.py")}
    modules = set(paths)
    return {name: engine_imports(path, modules) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_engine_imports_have_no_cycle():
    graph = import_graph()
    assert {"tracer", "mediator", "interleaver", "skipping", "barrier"} <= set(graph)
    assert "mediator" in graph["tracer"]  # the parser sees imports at all
    assert "mediator" in graph["skipping"]  # and type-only ones (under TYPE_CHECKING)
    cycle = find_cycle(graph)
    assert cycle is None, "engine import cycle: " + " -> ".join(cycle)


def test_the_check_finds_cycles_and_imports_inside_functions(tmp_path):
    (tmp_path / "low.py").write_text("from .high import x\n")
    (tmp_path / "high.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .other import y\n"
        "def f():\n    from .low import z\n"
    )
    (tmp_path / "other.py").write_text("from . import high\n")
    modules = {"low", "high", "other"}
    graph = {name: engine_imports(tmp_path / f"{name}.py", modules) for name in modules}
    assert graph == {"low": {"high"}, "high": {"low", "other"}, "other": {"high"}}
    assert find_cycle(graph) == ["high", "low", "high"]
    del graph["low"], graph["high"]  # a type-only import closes a cycle as well
    graph["high"] = {"other"}
    assert find_cycle(graph) == ["high", "other", "high"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
