"""The widgets in a real browser: JupyterLab on 127.0.0.1, headless Chromium, the real SmolLM2.

Starts ``jupyter lab`` (token, free port) on a scratch folder and runs a Playwright spec:

- ``widgets.spec.ts`` on a copy of ui-tests/notebooks/widgets.ipynb: click a module in the
  tree, choose layers, watch the logit lens fill, move the steering slider, click a patching
  cell, run the sweep.
- ``widget_states.spec.ts`` on a notebook written here: every widget shown beside the sidebar
  (whose tree keeps its line height), JupyterLab's styles kept out of the widgets, light and
  dark themes, then a kernel restart in the middle of a sweep (every widget says so, no spinner
  keeps spinning).

Both serve this checkout's build (its lab extension and widget bundles, its Python package),
whatever the environment has installed. Screenshots land in ui-tests/artifacts/<name>/ (or
``$LENSLAB_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..lab.checkout import this_checkout  # noqa: F401  (a fixture)
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
STATE_CELLS = [
    "from lenslab import LanguageModel\n"
    "from lenslab.widgets import (LayerPicker, ModuleTree, PatchingGrid, SteeringPanel,\n"
    "    activation_norms, generation_plot, live_logit_lens)\n\n"
    'model = LanguageModel("smollm2", dispatch=True)\n'
    'prompt = "The Eiffel Tower is located in the city of"',
    "tree = ModuleTree(model)\ntree",
    "picker = LayerPicker(model, prompt)\npicker",
    "lens = live_logit_lens(model, prompt)",
    "norms = activation_norms(model, prompt)",
    'steps, text = generation_plot(model, "The Eiffel Tower is in", max_new_tokens=3)',
    'panel = SteeringPanel(model, "I think that you are", positive=["I love you"],\n'
    '    negative=["I hate you"], layers=8, max_new_tokens=4)\npanel',
    "grid = PatchingGrid(model,\n"
    '    "When John and Mary went to the shops, John gave the bag to",\n'
    '    "When John and Mary went to the shops, Mary gave the bag to", " Mary", " John")\n'
    "grid",
    "import numpy as np\nfrom lenslab.widgets import Heatmap\n\n"
    'wide = Heatmap(rows=[f"layer {i}" for i in range(120)],\n'
    '    cols=[f"{i}: \' tok\'" for i in range(120)], legend="index")\n'
    "wide.set_all(np.arange(120 * 120))\nwide",
]


WALKTHROUGH_CELLS = [
    "from lenslab import LanguageModel\n"
    "from lenslab.widgets import PatchingGrid, SteeringPanel, activation_norms, generation_plot\n\n"
    'model = LanguageModel("smollm2", dispatch=True)\n'
    'prompt = "The Eiffel Tower is located in the city of"',
    'steps, text = generation_plot(model, "The Eiffel Tower is in", max_new_tokens=3)',
    'panel = SteeringPanel(model, "I think that you are", positive=["I love you"],\n'
    '    negative=["I hate you"], layers=8, max_new_tokens=3)\npanel',
    "panel.coefficient = 50\nprint(panel.low, panel.high, panel.shown_coefficient)",
    "grid = PatchingGrid(model,\n"
    '    "When John and Mary went to the shops, John gave the bag to",\n'
    '    "When John and Mary went to the shops, Mary gave the bag to", " Mary", " John")\n'
    "grid",
    "with model.trace(prompt):\n    hidden = model.model.layers[5].output.save()",
    "norms = activation_norms(model, prompt)",
    'norms.save("norms.svg"), norms.save("norms.png")\n'
    "print(\"norms.svg norms.png\", norms.to_numpy().shape)",
    "x = 1",
]
WALKTHROUGH_SHOTS = ("generation_plot", "steering_panel", "norms", "sidebar")


def notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
             "outputs": [], "source": source}
            for i, source in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip


def serve(
    tmp_path: Path, notebooks: dict[str, str], settings: dict[str, str], app: str = "jupyterlab"
):
    require_browser()
    work = tmp_path / "work"
    work.mkdir()
    for name, text in notebooks.items():
        (work / name).write_text(text)
    quiet = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false"}'
    }
    return running_lab(tmp_path, work, {**quiet, **settings}, app)


def playwright(
    spec: str, url: str, token: str, artifacts: Path, tmp_path: Path, **extra: str
) -> str:
    """Run one spec against the server; fail with its output and the server log."""
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
        **extra,
    )
    result = subprocess.run(
        ["npx", "--no-install", "playwright", "test", "--config", "ui-tests/playwright.config.ts",
         spec],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    output = result.stdout + result.stderr
    lab_log = (tmp_path / "lab.log").read_text()[-4000:]
    assert result.returncode == 0, f"{output[-8000:]}\n--- jupyter lab log ---\n{lab_log}"
    assert "1 passed" in output, output[-2000:]
    return output


def artifacts_for(name: str) -> Path:
    root = os.environ.get("LENSLAB_ARTIFACTS")
    return Path(root) / name if root else ROOT / "ui-tests" / "artifacts" / name


@pytest.mark.usefixtures("this_checkout")
def test_widgets_in_jupyterlab(tmp_path):
    # save widget state in the notebook: it re-opens without a kernel
    manager = {
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": '{"saveState": true}'
    }
    artifacts = artifacts_for("widgets")
    with serve(tmp_path, {"widgets.ipynb": NOTEBOOK.read_text()}, manager) as (url, token):
        playwright("widgets.spec.ts", url, token, artifacts, tmp_path)
    for name in SHOTS:
        assert (artifacts / f"{name}.png").stat().st_size > 1000, name
    saved = tmp_path / "work" / "widgets.ipynb"
    state = json.loads(saved.read_text())["metadata"]["widgets"]
    models = state["application/vnd.jupyter.widget-state+json"]["state"].values()
    tree = next(m for m in models if m["state"].get("_anywidget_id", "").endswith("ModuleTree"))
    assert tree["state"]["selected"] == "model.model.layers[5].mlp"


@pytest.mark.usefixtures("this_checkout")
def test_styles_themes_and_kernel_restart(tmp_path):
    artifacts = artifacts_for("states")
    notebooks = {"states.ipynb": json.dumps(notebook(STATE_CELLS))}
    with serve(tmp_path, notebooks, {}) as (url, token):
        playwright("widget_states.spec.ts", url, token, artifacts, tmp_path)
    for theme in ("light", "dark"):
        for name in ("sidebar", "module_tree", "layer_picker", "patching_grid", "norms"):
            assert (artifacts / f"{name}_{theme}.png").stat().st_size > 1000, (name, theme)
    assert (artifacts / "restarted.png").stat().st_size > 1000


def walk_through(tmp_path: Path, app: str) -> Path:
    artifacts = artifacts_for(f"walkthrough_{app}")
    notebooks = {"walkthrough.ipynb": json.dumps(notebook(WALKTHROUGH_CELLS))}
    server = "jupyterlab" if app == "lab" else "notebook"
    with serve(tmp_path, notebooks, {}, server) as (url, token):
        playwright("walkthrough.spec.ts", url, token, artifacts, tmp_path, LENSLAB_APP=app)
    for theme in ("light", "dark"):
        for name in WALKTHROUGH_SHOTS:
            assert (artifacts / f"{app}_{name}_{theme}.png").stat().st_size > 1000, (name, theme)
    assert (artifacts / f"{app}_sweep_running_light.png").stat().st_size > 1000
    return artifacts


@pytest.mark.usefixtures("this_checkout")
def test_walkthrough_in_jupyterlab(tmp_path):
    walk_through(tmp_path, "lab")


@pytest.mark.usefixtures("this_checkout")
def test_walkthrough_in_notebook7(tmp_path):
    pytest.importorskip("notebook.app", reason="Notebook 7 (pip install notebook) is not installed")
    walk_through(tmp_path, "notebook")
