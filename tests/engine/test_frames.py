"""Skipping a with-body and writing names back, on every CPython lenslab supports (3.10-3.13).

Only ``engine/frames.py`` is loaded (by path, without torch), so the check runs on any pyenv
interpreter on the machine, not just the one with torch installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FRAMES = Path(__file__).resolve().parents[2] / "python" / "lenslab" / "engine" / "frames.py"

SCRIPT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("frames", sys.argv[1])
frames = importlib.util.module_from_spec(spec); spec.loader.exec_module(frames)

class Deferred:
    def __init__(self, names): self.names = names
    def __enter__(self):
        self.frame = sys._getframe(1)
        self.restore = frames.skip_body(self.frame, self, self.frame.f_lineno + 1)
        return self
    def __exit__(self, kind, error, tb):
        self.restore()
        if kind is frames.SkipBody:
            frames.write_names(self.frame, self.names)
            return True

ran = []

def in_function():
    x = 1
    with Deferred({"x": 42, "y": 7}) as d:
        ran.append("function body")
        x, y = -1, -1  # what the real body binds; lenslab supplies the values
    assert (x, y) == (42, 7), (x, y)
    assert isinstance(d, Deferred), "the as-name is bound"
    with Deferred({"x": 5}) as one: ran.append("one-line body")
    assert x == 5 and isinstance(one, Deferred)
    for i in range(3):
        with Deferred({"total": i}):
            try:
                ran.append("loop body that begins with try")
                total = -1
            finally:
                ran.append("its finally")
        assert total == i
    with Deferred({}):
        pass
    box = [None]
    with Deferred({}) as box[0]:  # a complex target: the stop waits for the body's line
        ran.append("subscript target")
    assert isinstance(box[0], Deferred)
    cell = None
    def closure():
        return cell
    with Deferred({}) as cell:
        ran.append("cell")
    assert isinstance(closure(), Deferred)
    return x

def declares_global():
    global g
    with Deferred({}) as g:
        ran.append("global")

class Holder:
    def method(self):
        with Deferred({"z": "method"}):
            ran.append("method body")
            z = None
        return z

traced_lines = []
def local(frame, event, arg):
    if event == "line":
        traced_lines.append(frame.f_lineno)
    return local
def tracer(frame, event, arg):
    return local if frame.f_code.co_name == "in_function" else None

sys.settrace(tracer)
assert in_function() == 5
assert sys.gettrace() is tracer, "a running tracer survives"
sys.settrace(None)
last = in_function.__code__.co_firstlineno + 29  # its `return x`
assert last in traced_lines, ("the tracer still sees lines after the skips", traced_lines)
declares_global()
assert isinstance(g, Deferred)
assert Holder().method() == "method"
with Deferred({"w": 3}) as m:
    ran.append("module body")
    w = None
assert w == 3 and isinstance(m, Deferred)
trace_before = sys.gettrace()
assert ran == [], ran
print("ok", sys.version_info[:2], trace_before)
"""


def interpreters() -> list[str]:
    found = {sys.executable}
    root = Path.home() / ".pyenv" / "versions"
    for minor in ("3.10", "3.11", "3.12", "3.13"):
        found.update(str(p / "bin" / "python") for p in root.glob(f"{minor}.*"))
    return sorted(p for p in found if Path(p).exists())


@pytest.mark.parametrize("python", interpreters())
def test_skip_and_write_back(python):
    result = subprocess.run(
        [python, "-c", SCRIPT, str(FRAMES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok") and result.stdout.rstrip().endswith("None")
