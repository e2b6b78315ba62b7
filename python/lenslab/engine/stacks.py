"""Where the engine's greenlets start, and why a native stack walk inside one is safe.

A greenlet has no stack of its own: it runs on the thread's C stack, on top of the frames of
whoever switched into it first, and greenlet copies its frames in and out of the heap as
others run. Its first frames therefore sit right under memory that belongs to someone else
once that caller moves on: a forward paused in a hook is later resumed from another line of the
block (another Python-to-C call depth), and the engine reuses finished greenlets for later
traces. Python never looks past a greenlet's first frame, but native code does: every
``c10::Error`` that torch raises (a shape mismatch in a body, the CUDA build's
``cudaStreamIsCapturing`` failing on a machine without a driver, which transformers calls on
every forward) records its C++ stack with glibc's ``backtrace()``, and a C++ exception looks up
the stack for its handler. Walking past the greenlet's first frame, they read return addresses
from another call's frames and the process dies with a segmentation fault — seen with the CUDA
build of torch on every few traces, and on the CPU build too once a forward fails a few C
calls above a greenlet resumed from a different depth.

So every greenlet the engine starts runs its function through ``_stackfloor.floor``, a C frame
whose unwind information says it has no caller (the return address is undefined, as in the
first frame of a thread). Native walks stop there, as they stop at the top of a thread; Python
code, pdb and tracebacks are unaffected, and the cost is one C call per greenlet start.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from greenlet import greenlet

try:
    from ._stackfloor import floor
except ImportError as error:  # a source checkout used without installing it
    raise ImportError(
        "lenslab's compiled helper lenslab/engine/_stackfloor is missing: this copy of lenslab "
        "was not built. Install it with `pip install -e .` (or scripts/install) from the "
        "repository, which compiles it; a C compiler and Python's headers are needed."
    ) from error


def spawn(run: Callable[..., Any], parent: greenlet | None = None) -> greenlet:
    """A new greenlet that runs ``run(*args)`` above a frame that ends native stack walks."""
    start = functools.partial(floor, run)
    return greenlet(start) if parent is None else greenlet(start, parent)
