"""The lab sidebar end to end: a real JupyterLab on 127.0.0.1, headless Chromium, SmolLM2.

Starts ``jupyter lab`` (this checkout's build) with a token on a free port in a scratch folder
holding two notebooks, runs ui-tests/tests/sidebar.spec.ts with Playwright (``npx playwright
test``) and asserts it passed. The screenshots land in ui-tests/artifacts/sidebar/ (or
``$LENSLAB_ARTIFACTS/sidebar``).
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

LENSLAB_CELLS = [
    'import lenslab\nfrom lenslab import LanguageModel\n\nmodel = LanguageModel("smollm2")',
    "",
    'with model.trace("The Eiffel Tower is located in the city of"):\n'
    "    hidden = model.model.layers[5].output.save()\n"
    "    logits = model.output.logits[:, -1].save()",
    "import time\n\ntime.sleep(30)",
]
OTHER_CELLS = [
    "import torch\nfrom lenslab import NNsight\n\n"
    "net = NNsight(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))",
]


def notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
             "outputs": [], "source": source}
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                           "name": "python3"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def lab(request, tmp_path):
    """A JupyterLab server on 127.0.0.1 serving tmp_path/work; yields (url, token)."""
    request.getfixturevalue("this_checkout")
    require_browser()
    work = tmp_path / "work"
    work.mkdir()
    (work / "lenslab.ipynb").write_text(json.dumps(notebook(LENSLAB_CELLS)))
    (work / "other.ipynb").write_text(json.dumps(notebook(OTHER_CELLS)))
    # no "get notified about Jupyter news?" toast
    quiet = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false"}'
    }
    with running_lab(tmp_path, work, quiet) as server:
        yield server


def test_sidebar_end_to_end(lab, tmp_path):
    url, token = lab
    root = Path(os.environ.get("LENSLAB_ARTIFACTS", ROOT / "ui-tests" / "artifacts"))
    artifacts = root / "sidebar"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    env = dict(os.environ, LAB_URL=url, LAB_TOKEN=token, LENSLAB_ARTIFACTS=str(root),
               CHROMIUM=CHROMIUM, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    result = subprocess.run(
        ["npx", "--no-install", "playwright", "test", "--config", "ui-tests/playwright.config.ts",
         "sidebar.spec.ts"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    output = result.stdout + result.stderr
    lab_log = (tmp_path / "lab.log").read_text()[-4000:]
    assert result.returncode == 0, f"{output[-8000:]}\n--- jupyter lab log ---\n{lab_log}"
    for name in ("tree", "saved", "lab-light", "dark"):
        assert (artifacts / f"{name}.png").stat().st_size > 1000
