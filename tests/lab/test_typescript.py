"""The lab extension's TypeScript: strict type checks, and its unit tests (jest, jsdom)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def npx(*args: str) -> subprocess.CompletedProcess:
    if not (ROOT / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail("node_modules is missing: scripts/install (pip install -e .) runs npm")
    return subprocess.run(["npx", "--no-install", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(
    "project",
    [
        ["-p", "js/lab", "--noEmit", "--composite", "false", "--incremental", "false",
         "--declaration", "false"],
        ["-p", "js/lab/test"],
        ["-p", "ui-tests"],
    ],
    ids=["extension", "unit-tests", "ui-tests"],
)
def test_strict_type_check(project):
    result = npx("tsc", *project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests():
    result = npx("jest", "--config", "js/lab/jest.config.cjs", "--ci")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stderr.split("Tests:")[-1].split("\n")[0]
