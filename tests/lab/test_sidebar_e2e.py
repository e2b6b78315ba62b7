"""The lab sidebar end to end: a real JupyterLab on 127.0.0.1, headless Chromium, SmolLM2.

Starts ``jupyter lab`` with a token on a free port in a scratch folder holding two notebooks,
runs ui-tests/tests/sidebar.spec.ts with Playwright (``npx playwright test``) and asserts it
passed. The screenshots land in ui-tests/artifacts/sidebar/ (or ``$LENSLAB_ARTIFACTS/sidebar``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving tmp_path/work; yields (url, token)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install installs Debian's chromium")
    if not (ROOT / "node_modules" / "@playwright" / "test").exists():
        pytest.fail("node_modules is missing: scripts/install (pip install -e .) runs npm")
    work = tmp_path / "work"
    work.mkdir()
    (work / "lenslab.ipynb").write_text(json.dumps(notebook(LENSLAB_CELLS)))
    (work / "other.ipynb").write_text(json.dumps(notebook(OTHER_CELLS)))
    notifications = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    notifications.mkdir(parents=True)  # no "get notified about Jupyter news?" toast
    (notifications / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={work}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "lab.log").read_text())
                time.sleep(0.5)
        yield url, token
    finally:
        stop(server)
        log.close()


def stop(server: subprocess.Popen) -> None:
    """End the server we started, and its kernels (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


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
