"""comms/ never reaches torch or the engine: it gets an Inspector at registration."""

from __future__ import annotations

import ast
from pathlib import Path

import lenslab.comms

COMMS = Path(lenslab.comms.__file__).parent
FORBIDDEN = {"torch", "transformers", "engine", "models", "tools", "widgets", "server", "remote"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # from ..engine import x: "engine"
            names.add((node.module or "").split(".")[0])
    return names


def test_comms_imports_neither_torch_nor_the_engine():
    for path in COMMS.glob("*.py"):
        assert not imported(path) & FORBIDDEN, f"{path.name} imports {imported(path) & FORBIDDEN}"
