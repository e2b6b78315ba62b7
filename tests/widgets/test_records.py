"""Records are JSON-able; records/ and widgets/ import neither torch nor the engine at import."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import lenslab
from lenslab.records import Grid, ModuleNode, PatchOutcome, Selection, TopToken

PACKAGE = Path(lenslab.__file__).parent


def test_records_round_trip_through_json():
    leaf = ModuleNode("model.lm_head", "lm_head", "Linear", 10, "(1, 4, 7)")
    root = ModuleNode("model", "model", "Net", 10, None, (leaf,))
    assert ModuleNode.from_json(json.loads(json.dumps(root.to_json()))) == root
    assert root.find("model.lm_head").expression == "model.lm_head.output"
    outcome = PatchOutcome("resid", 3, 2, " to", 0.5, [TopToken(" a", 1, 0.2)], [], [])
    assert json.loads(json.dumps(outcome.to_json()))["clean"][0]["prob"] == 0.2
    grid = Grid("t", ["a"], ["x", "y"], [[None, 2.0]], colors="diverging")
    assert grid.bounds() == (-2.0, 2.0)
    json.dumps(grid.to_json())
    selection = Selection((3, 5), "mlp", (1,))
    assert selection.view == "mlps_output"
    assert selection.patching_kwargs() == {"components": ["mlp"], "positions": [1]}


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            found.add(prefix + (node.module or "").split(".")[0])
    return found


def test_records_and_widgets_import_no_torch_and_no_engine():
    allowed = {"records": set(), "widgets": {"..records", "..errors"}}
    for folder, outside in allowed.items():
        for path in (PACKAGE / folder).glob("*.py"):
            imports = _top_level_imports(path)
            assert "torch" not in imports, f"{folder}/{path.name} imports torch at import time"
            for name in imports:
                if name.startswith("..") or name == "lenslab":
                    assert name in outside, f"{folder}/{path.name} imports {name} at import time"
