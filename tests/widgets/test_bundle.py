"""The TypeScript front ends: strict type check, one esbuild bundle per widget, and each
widget's ``_esm`` is its bundle (no CDN import anywhere)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lenslab import widgets

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "js" / "widgets"
STATIC = Path(widgets.__file__).parent / "static"
NAMES = sorted(p.parent.name for p in SOURCES.glob("*/index.ts"))
BIN = ROOT / "node_modules" / ".bin"
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (BIN / "esbuild").exists(),
    reason="node and npm packages not installed (npm ci)",
)


def test_every_widget_has_a_front_end():
    classes = {
        "heatmap": widgets.Heatmap,
        "layer_picker": widgets.LayerPicker,
        "module_tree": widgets.ModuleTree,
        "patching_grid": widgets.PatchingGrid,
        "steering_panel": widgets.SteeringPanel,
    }
    assert sorted(classes) == NAMES
    for name, cls in classes.items():
        esm = cls._esm
        if (STATIC / f"{name}.js").is_file():
            assert str(esm) == (STATIC / f"{name}.js").read_text()
        else:
            assert "not built" in str(esm)


@needs_node
def test_typescript_is_strict_and_clean():
    run = subprocess.run(
        [str(BIN / "tsc"), "-p", str(SOURCES)], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout + run.stderr


@needs_node
def test_build_writes_one_offline_bundle_per_widget():
    run = subprocess.run(
        ["node", str(SOURCES / "build.mjs")], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    for name in NAMES:
        code = (STATIC / f"{name}.js").read_text()
        assert "export" in code and "render" in code
        assert "https://" not in code and "import(" not in code  # self-contained, offline
