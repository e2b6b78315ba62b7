"""Length-prefixed byte frames between the server and a model worker, over plain pipes."""

from __future__ import annotations

import os
import select
import struct
import time

_LENGTH = struct.Struct(">Q")


class PipeClosed(EOFError):
    """The other end is gone (the worker exited or was killed)."""


class PipeTimeout(TimeoutError):
    """No complete frame arrived in time."""


class FrameTooLarge(ValueError):
    """The other end announced a frame over the reader's limit (nothing of it was read)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a frame of {size} bytes, over the limit of {limit}")
        self.size = size


def write_frame(fd: int, payload: bytes) -> None:
    """Send one frame: its length, then its bytes."""
    data = memoryview(_LENGTH.pack(len(payload)) + payload)
    while data:
        try:
            written = os.write(fd, data)
        except BrokenPipeError:
            raise PipeClosed("the other end of the pipe is closed") from None
        data = data[written:]


def read_frame(fd: int, timeout: float | None = None, limit: int | None = None) -> bytes:
    """Receive one frame, waiting at most ``timeout`` seconds in all (None: forever).

    Raises:
        FrameTooLarge: the frame is over ``limit`` bytes (checked before reading it).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size, deadline))
    if limit is not None and size > limit:
        raise FrameTooLarge(size, limit)
    return _read_exactly(fd, size, deadline)


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                raise PipeTimeout(f"no answer within the time limit ({size - left}/{size} bytes)")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise PipeClosed("the other end of the pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
