"""Package hygiene: exported names, import side effects, import direction."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lenslab

PACKAGE = Path(lenslab.__file__).parent


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(lenslab) if not name.startswith("_")}
    public -= {
        "comms",
        "engine",
        "errors",
        "models",
        "records",
        "remote",
        "server",
        "tools",
        "widgets",
    }  # subpackages, reachable but not re-exported API
    assert set(lenslab.__all__) == public | {"__version__"}
    for name in lenslab.__all__:
        assert getattr(lenslab, name) is not None


def test_every_error_is_a_lens_error():
    for name in lenslab.__all__:
        value = getattr(lenslab, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, lenslab.LensError) or value is lenslab.LensWarning


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add((node.module or "").split(".")[0])
    return found


def test_engine_never_imports_models():
    for path in (PACKAGE / "engine").glob("*.py"):
        assert "models" not in _imports(path), f"{path.name} imports lenslab.models"


def test_import_changes_nothing_in_torch_or_python():
    code = """
import sys, torch, torch.nn as nn
before = (set(vars(torch.Tensor)), nn.Module.__call__, nn.Module.forward, sys.excepthook,
          sys.gettrace(), sys.getprofile(), dict(nn.modules.module._global_forward_hooks))
import lenslab
after = (set(vars(torch.Tensor)), nn.Module.__call__, nn.Module.forward, sys.excepthook,
         sys.gettrace(), sys.getprofile(), dict(nn.modules.module._global_forward_hooks))
assert before == after, [b == a for b, a in zip(before, after)]
assert not hasattr(torch.Tensor, "save")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
