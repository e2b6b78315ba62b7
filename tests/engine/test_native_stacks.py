"""Native code that walks the C stack from inside a trace (engine/stacks.py says why it matters).

torch records glibc's ``backtrace()`` for every ``c10::Error``; on a greenlet whose first caller
has moved on, that walk used to read other calls' frames and crash the process. These tests
take the walk themselves and check where it ends, and run the crash's recipe (a forward that
fails a few C calls above a greenlet resumed from another C call depth) in a fresh process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from lenslab import NNsight
from lenslab.engine import _stackfloor

from ..conftest import assert_clean
from .test_stress import under_c_frames

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc backtrace()")


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def outermost_native_frame() -> str:
    """The shared object holding the last frame glibc's backtrace() reaches from here."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    frames = (ctypes.c_void_p * 4096)()
    count = libc.backtrace(frames, len(frames))
    assert 0 < count < len(frames), "the walk did not end"
    info = _DlInfo()
    libc.dladdr(ctypes.c_void_p(frames[count - 1]), ctypes.byref(info))
    return (info.dli_fname or b"?").decode()


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


@linux_only
def test_a_native_walk_inside_the_forward_ends_at_the_engines_floor():
    net = Chain()
    model = NNsight(net)
    ends: list[str] = []
    handle = net.second.register_forward_hook(
        lambda *_: ends.append(outermost_native_frame())
    )
    try:

        def edit() -> None:
            with model.trace(torch.ones(2, 4)):
                h = model.first.output
                model.second.output[:] = h.sum()  # an edit: the forward pauses on a greenlet

        for depth in (0, 3, 1, 5):  # the worker greenlet is reused from different depths
            under_c_frames(depth, edit)
    finally:
        handle.remove()
    assert len(ends) == 4
    assert all(end == _stackfloor.__file__ for end in ends), ends
    # On the caller's own stack the walk runs to the thread's real first frame instead.
    assert outermost_native_frame() != _stackfloor.__file__
    assert_clean(net)


@linux_only
def test_a_native_walk_inside_a_deferred_invoke_body_ends_at_the_floor():
    net = Chain()
    model = NNsight(net)
    ends: list[str] = []
    with model.trace() as tracer:
        with tracer.invoke(torch.ones(1, 4)):
            h = model.first.output
            ends.append(outermost_native_frame())
            model.second.output[:] = h
        with tracer.invoke(torch.zeros(1, 4)):
            model.second.output[:] = 0
    assert ends == [_stackfloor.__file__], ends
    assert_clean(net)


def test_torch_errors_from_forwards_resumed_at_other_depths_do_not_crash():
    """The crash's recipe: it died with SIGSEGV here in 3 runs of 3 before the floor existed."""
    script = textwrap.dedent(
        """
        import torch
        from torch import nn
        from lenslab import NNsight

        class Failing(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.b = nn.Linear(4, 4)
            def forward(self, x):
                h = self.a(x)
                if x.shape[0] == 3:
                    torch.ones(2) @ torch.ones(3)   # c10::Error, which records backtrace()
                return self.b(h)

        model = NNsight(Failing())

        def deep(n, f):  # n extra C frames between here and the trace
            return f() if n == 0 else next(map(lambda _: deep(n - 1, f), [0]))

        def trace(rows):
            with model.trace(torch.ones(rows, 4)):
                h = model.a.output
                model.b.output[:] = h.sum()

        failures = 0
        for i in range(200):
            deep(i % 7, lambda: trace(2))
            try:
                deep((i * 3) % 11, lambda: trace(3))
            except RuntimeError:
                failures += 1
        print("failures", failures)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-2000:]}"
    assert "failures 200" in done.stdout
