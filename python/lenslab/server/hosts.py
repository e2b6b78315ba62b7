"""Hosted models: each has a worker process, a FIFO job queue and one thread feeding it.

Jobs of one model run one at a time, in order, each in a fresh copy of the model's wrapper
(its own edits) inside a worker that verifies the model is unchanged afterwards; so concurrent
clients never see each other's edits, hooks or values. A job past the time limit kills the
worker (a fresh one is started); a client that goes away leaves a result nobody fetches, which
is dropped after ``RESULT_TTL`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..remote.protocol import pack
from .pipe import PipeClosed, PipeTimeout, read_frame, write_frame

RESULT_TTL = 600.0
LOAD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Limits:
    """Per-job limits a server enforces."""

    time: float = 120.0  # seconds a job may run
    result_bytes: int = 256 * 1024 * 1024
    request_bytes: int = 256 * 1024 * 1024
    queue: int = 1000  # jobs waiting per model


@dataclass
class Job:
    """One submitted block: who sent it, where it is, and its reply once finished."""

    model: str
    owner: str  # a digest of the submitting key: only its owner can see the job
    message: bytes
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    status: str = "queued"  # queued -> running -> done | failed
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None
    reply: bytes | None = None


class QueueFull(RuntimeError):
    """The model's queue already holds ``Limits.queue`` jobs."""


def model_name(spec: str) -> tuple[str, str, frozenset[str]]:
    """``(name, checkpoint spec, aliases)`` for a ``--model`` argument (``NAME=PATH`` names it)."""
    from ..models.loading import SHORT_NAMES

    name, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
    base = path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    name = name or base
    aliases = {name.lower(), base.lower()}
    if path.lower() in SHORT_NAMES:
        aliases |= SHORT_NAMES | {n.rsplit("/", 1)[-1] for n in SHORT_NAMES}
    return name, path, frozenset(aliases)


class Host:
    """One hosted model (see the module docstring)."""

    def __init__(self, spec: str, limits: Limits, threads: int = 0) -> None:
        self.name, self.path, self.aliases = model_name(spec)
        self.limits = limits
        self.threads = threads
        self.state = "starting"
        self.info: dict[str, Any] = {}
        self.problem: str | None = None
        self.running: Job | None = None
        self._queue: deque[Job] = deque()
        self._ready = threading.Condition()
        self._process: subprocess.Popen[bytes] | None = None
        self._fds: tuple[int, int] | None = None
        self._stopped = False
        self._thread = threading.Thread(
            target=self._serve, name=f"lenslab-{self.name}", daemon=True
        )

    # -- queue -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._ready:
            if len(self._queue) >= self.limits.queue:
                raise QueueFull(f"{self.name} already has {len(self._queue)} jobs waiting")
            self._queue.append(job)
            self._ready.notify()

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job`` (the running one included)."""
        with self._ready:
            try:
                return self._queue.index(job) + (self.running is not None)
            except ValueError:
                return 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def stop(self) -> None:
        self._stopped = True
        with self._ready:
            self._ready.notify_all()
        self._kill()

    # -- the feeding thread ------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopped:
            if self._process is None and not self._launch():
                time.sleep(5.0)  # a model that fails to load: say why on /health, retry
                continue
            with self._ready:
                while not self._queue and not self._stopped:
                    self._ready.wait()
                if self._stopped:
                    return
                job = self._queue.popleft()
                self.running = job
            job.status = "running"
            try:
                job.reply, ok = self._run(job), True
            except Exception as error:  # the worker died or hung: a fresh one for the next job
                job.reply, ok = _failure(str(error)), False
            finally:
                self.running = None
            job.finished = time.monotonic()
            job.status = "done" if ok else "failed"

    def _run(self, job: Job) -> bytes:
        assert self._fds is not None and self._process is not None
        write, read = self._fds
        header = {"id": job.id, "max_result": self.limits.result_bytes}
        try:
            write_frame(write, json.dumps(header).encode())
            write_frame(write, job.message)
            status = json.loads(read_frame(read, timeout=self.limits.time))
            reply = read_frame(read, timeout=60.0)
        except PipeTimeout:
            self._restart()
            raise RuntimeError(
                f"the job ran past this server's time limit of {self.limits.time:.0f} s and was "
                "stopped. Make the block do less (fewer tokens, prompts or loops)."
            ) from None
        except PipeClosed:
            self._restart()
            raise RuntimeError(
                "the model worker stopped while running the job (out of memory?); the server "
                "restarted it. Make the block use less memory."
            ) from None
        if status.get("exit"):
            self._restart()  # the worker found the model changed and exits: start afresh
        return reply

    def _launch(self) -> bool:
        self.state = "starting" if not self.info else "restarting"
        to_worker, from_server = os.pipe()
        to_server, from_worker = os.pipe()
        command = [
            sys.executable, "-m", "lenslab.server.worker", "--model", self.path,
            "--read-fd", str(to_worker), "--write-fd", str(from_worker),
            "--threads", str(self.threads),
        ]  # fmt: skip
        path = [_package_root(), os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
        self._process = subprocess.Popen(
            command, pass_fds=(to_worker, from_worker), stdout=sys.stderr, env=env
        )
        os.close(to_worker)
        os.close(from_worker)
        self._fds = (from_server, to_server)
        try:
            ready = json.loads(read_frame(to_server, timeout=LOAD_TIMEOUT))
        except (PipeClosed, PipeTimeout) as error:
            ready = {"error": f"the worker did not start ({error})"}
        if "ready" not in ready:
            self.problem = ready.get("error", "unknown")
            self.state = "failed"
            self._kill()
            return False
        self.info, self.problem, self.state = ready["ready"], None, "ready"
        return True

    def _restart(self) -> None:
        self._kill()

    def _kill(self) -> None:
        process, fds = self._process, self._fds
        self._process, self._fds = None, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()
        for fd in fds or ():
            with contextlib.suppress(OSError):
                os.close(fd)


def _failure(message: str) -> bytes:
    return pack(
        {
            "kind": "error",
            "category": "limit",
            "type": "RemoteJobError",
            "bases": ["RuntimeError"],
            "message": message,
            "line": None,
            "code": None,
            "stdout": "",
        },
        {},
    )


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])
