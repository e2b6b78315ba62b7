"""A fixture for the browser tests: serve this checkout's build, not whatever is installed."""

from __future__ import annotations

import os

import pytest

from ..lab_server import ROOT


@pytest.fixture
def this_checkout(tmp_path, monkeypatch):
    """This checkout's lab extension first on JUPYTER_PATH and its package first on PYTHONPATH
    (the server and its kernels inherit both), whatever an editable install points at: a git
    worktree tests its own front end and Python."""
    extensions = tmp_path / "data" / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "lenslab").symlink_to(ROOT / "python" / "lenslab" / "labextension")
    paths = [str(tmp_path / "data"), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in paths if p))
    paths = [str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
