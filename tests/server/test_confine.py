"""Where the kernel lacks a layer, the worker says so loudly instead of pretending. Confinement
is irreversible, so each case runs in a fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys, tempfile
from lenslab.server import confine

def missing():
    raise OSError(2, "libseccomp is not installed")

confine.landlock_abi = lambda: 0
confine.load_libseccomp = missing
report = confine.confine(tempfile.mkdtemp(), confine.Budget())
print(json.dumps(report.as_info()))
"""


def test_a_kernel_without_landlock_or_seccomp_gets_a_loud_warning():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["confined"] == []
    assert any("Landlock" in m for m in report["missing"])
    assert any("seccomp" in m for m in report["missing"])
    assert report["limits"]["open files"] == 512  # rlimits still apply
    assert done.stderr.count("WARNING: the model worker runs WITHOUT") == 2
