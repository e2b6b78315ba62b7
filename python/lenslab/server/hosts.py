"""Hosted models: each has a worker process, a FIFO job queue and one thread feeding it.

Jobs of one model run one at a time, in order, each in a fresh copy of the model's wrapper
(its own edits) inside a worker that verifies the model is unchanged afterwards; so concurrent
clients never see each other's edits, hooks or values. A job past the time limit kills the
worker (a fresh one is started); a client that goes away leaves a result nobody fetches, which
is dropped after ``RESULT_TTL`` seconds.

A worker that dies while idle is noticed by the feeding thread (it checks while waiting, and
again right before sending a job), and by ``/health``; a job is only charged with a worker's
death once the worker has acknowledged receiving it, so an innocent job is resent to a fresh
worker instead of failing. Every reply is size-checked here as well as in the worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..remote.protocol import pack
from .pipe import FrameTooLarge, PipeClosed, PipeTimeout, read_frame, write_frame

RESULT_TTL = 600.0
LOAD_TIMEOUT = 900.0
ACCEPT_TIMEOUT = 60.0
IDLE_CHECK = 1.0  # seconds between liveness checks of an idle worker
SEND_ATTEMPTS = 3
REPLY_SLACK = 64 * 1024  # the reply's JSON around its values


@dataclass(frozen=True)
class Limits:
    """Per-job limits a server enforces."""

    time: float = 120.0  # seconds a job may run
    result_bytes: int = 256 * 1024 * 1024
    request_bytes: int = 256 * 1024 * 1024
    queue: int = 1000  # jobs waiting per model
    memory_bytes: int = 0  # address space of a worker (0: what the model takes, plus 8 GiB)


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
        self.refused: frozenset[str] | None = None  # from the worker's allow-lists, once ready
        self.problem: str | None = None
        self.running: Job | None = None
        self._queue: deque[Job] = deque()
        self._ready = threading.Condition()
        self._process: subprocess.Popen[bytes] | None = None
        self._fds: tuple[int, int] | None = None
        self._scratch: str | None = None
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

    def check_alive(self) -> bool:
        """Whether the worker is up; a dead idle one is marked and its restart started."""
        process = self._process
        if process is None or not _exited(process):
            return process is not None
        if self.running is None:
            self.state = "restarting"
            with self._ready:
                self._ready.notify_all()
        return False

    def stop(self) -> None:
        self._stopped = True
        with self._ready:
            self._ready.notify_all()
        self._kill()

    # -- the feeding thread ------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopped:
            if not self._ensure_worker():
                time.sleep(5.0)  # a model that fails to load: say why on /health, retry
                continue
            with self._ready:
                while not self._queue and not self._stopped and self._worker_alive():
                    self._ready.wait(IDLE_CHECK)
                if self._stopped:
                    return
                if not self._queue:
                    continue  # the idle worker died: start a fresh one before any job
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

    def _worker_alive(self) -> bool:
        return self._process is not None and not _exited(self._process)

    def _ensure_worker(self) -> bool:
        if self._worker_alive():
            return True
        self._kill()
        return self._launch()

    def _run(self, job: Job) -> bytes:
        """Send ``job`` to a live worker and return its reply; resent if no worker took it."""
        for _ in range(SEND_ATTEMPTS):
            if not self._ensure_worker():
                raise RuntimeError(f"the model could not be loaded: {self.problem}")
            if self._send(job):
                return self._answer()
            self._kill()  # it died before taking the job: the job is not to blame
        raise RuntimeError("the model worker kept stopping before it could take the job.")

    def _send(self, job: Job) -> bool:
        """Whether the worker acknowledged ``job`` (False: it was gone before taking it)."""
        assert self._fds is not None
        write, read = self._fds
        header = {"id": job.id, "max_result": self.limits.result_bytes}
        try:
            write_frame(write, json.dumps(header).encode())
            write_frame(write, job.message)
            return json.loads(read_frame(read, timeout=ACCEPT_TIMEOUT)).get("accepted") is True
        except (PipeClosed, PipeTimeout, ValueError):
            return False

    def _answer(self) -> bytes:
        assert self._fds is not None and self._process is not None
        _, read = self._fds
        limit = self.limits.result_bytes + REPLY_SLACK
        try:
            status = json.loads(read_frame(read, timeout=self.limits.time, limit=1024))
            reply = read_frame(read, timeout=60.0, limit=limit)
        except PipeTimeout:
            self._restart()
            raise RuntimeError(
                f"the job ran past this server's time limit of {self.limits.time:.0f} s and was "
                "stopped. Make the block do less (fewer tokens, prompts or loops)."
            ) from None
        except FrameTooLarge as large:
            self._restart()
            raise RuntimeError(
                f"the job's reply is {large.size / 1e6:.1f} MB, over this server's limit of "
                f"{self.limits.result_bytes / 1e6:.1f} MB. Bind (or .save()) less in the block."
            ) from None
        except (PipeClosed, ValueError):
            why = self._exit_reason()
            self._restart()
            raise RuntimeError(
                f"the model worker stopped while running the job ({why}); the server restarted "
                "it. If the block uses much memory (long generations, many prompts), make it use "
                "less."
            ) from None
        if status.get("exit"):
            self._restart()  # the worker found the model changed and exits: start afresh
        return reply

    def _exit_reason(self) -> str:
        process = self._process
        if process is None:
            return "it is gone"
        try:
            code = process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            hint = " (out of memory, or over the memory limit)" if code == -signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exit status {code}"

    def _launch(self) -> bool:
        self.state = "starting" if not self.info else "restarting"
        to_worker, from_server = os.pipe()
        to_server, from_worker = os.pipe()
        self._scratch = tempfile.mkdtemp(prefix=f"lenslab-{self.name}-")
        command = [
            sys.executable, "-m", "lenslab.server.worker", "--model", self.path,
            "--read-fd", str(to_worker), "--write-fd", str(from_worker),
            "--threads", str(self.threads), "--scratch", self._scratch,
            "--memory-bytes", str(self.limits.memory_bytes),
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
        info = dict(ready["ready"])
        self.refused = frozenset(info.pop("refused", ()))
        self.info, self.problem, self.state = info, None, "ready"
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
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


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


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the worker has exited. ``poll()`` alone says "running" while another thread is
    inside ``waitpid`` for the same process (it does not wait for that thread: /health and the
    feeding thread ask at once), so an unreaped process (a zombie) counts as exited too."""
    if process.poll() is not None:
        return True
    try:
        with open(f"/proc/{process.pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:  # reaped meanwhile
        return True
