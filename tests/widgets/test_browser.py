"""The widgets in a real browser: JupyterLab on 127.0.0.1, headless Chromium, the real SmolLM2.

Starts ``jupyter lab`` (token, free port) on a scratch copy of ui-tests/notebooks/widgets.ipynb
and runs ui-tests/tests/widgets.spec.ts with Playwright: click a module in the tree, choose
layers, watch the logit lens fill, move the steering slider, click a patching cell, run the
sweep. Screenshots land in ui-tests/artifacts/widgets/ (or ``$LENSLAB_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..lab_server import CHROMIUM, ROOT, require_browser, running_lab

NOTEBOOK = ROOT / "ui-tests" / "notebooks" / "widgets.ipynb"
SHOTS = (
    "module_tree",
    "layer_picker",
    "logit_lens",
    "generation_plot",
    "steering_panel",
    "patching_grid",
    "module_tree_dark",
    "patching_grid_dark",
    "reopened_patching_grid",
)


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a scratch folder with widgets.ipynb; yields (url, token)."""
    require_browser()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / "widgets.ipynb")
    # save widget state in the notebook: it re-opens without a kernel
    manager = {
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": '{"saveState": true}'
    }
    with running_lab(tmp_path, work, manager) as server:
        yield server


def test_widgets_in_jupyterlab(lab, tmp_path):
    url, token = lab
    saved = tmp_path / "work" / "widgets.ipynb"
    default = ROOT / "ui-tests" / "artifacts" / "widgets"
    artifacts = Path(os.environ.get("LENSLAB_ARTIFACTS", default))
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    env = dict(
        os.environ,
        LAB_URL=url,
        LAB_TOKEN=token,
        LENSLAB_ARTIFACTS=str(artifacts),
        LENSLAB_WIDGETS="1",
        CHROMIUM=CHROMIUM,
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1",
    )
    result = subprocess.run(
        ["npx", "--no-install", "playwright", "test", "--config", "ui-tests/playwright.config.ts",
         "widgets.spec.ts"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    output = result.stdout + result.stderr
    lab_log = (tmp_path / "lab.log").read_text()[-4000:]
    assert result.returncode == 0, f"{output[-8000:]}\n--- jupyter lab log ---\n{lab_log}"
    assert "1 passed" in output, output[-2000:]
    for name in SHOTS:
        assert (artifacts / f"{name}.png").stat().st_size > 1000, name
    state = json.loads(saved.read_text())["metadata"]["widgets"]
    models = state["application/vnd.jupyter.widget-state+json"]["state"].values()
    tree = next(m for m in models if m["state"].get("_anywidget_id", "").endswith("ModuleTree"))
    assert tree["state"]["selected"] == "model.model.layers[5].mlp"
