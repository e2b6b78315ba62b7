"""A real lenslab server on 127.0.0.1, started once for these tests and stopped at the end.

It hosts the real SmolLM2 and a tiny random Llama (saved to a temporary checkpoint with
SmolLM2's tokenizer), with a short time limit and a small result limit so the limit tests are
quick. Tests talk to it only through ``remote=True`` and plain HTTP.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ..lab_server import free_port

KEY = "test-key-1"
TIME_LIMIT = 20
MAX_RESULT_MB = 8
START_TIMEOUT = 240


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    tiny_path: Path
    process: subprocess.Popen[bytes]

    def health(self) -> dict:
        return httpx.get(f"{self.url}/v1/health", timeout=10).json()


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory, tokenizer) -> Path:
    """A tiny random Llama checkpoint with SmolLM2's tokenizer, on disk for the server."""
    from tests.conftest import make_tiny

    path = tmp_path_factory.mktemp("remote") / "tiny-llama"
    make_tiny("llama", tokenizer, seed=3)._model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def server(tiny_path, tmp_path_factory) -> Iterator[Server]:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# test keys\n{KEY}\n")
    port = free_port()
    log = open(tmp_path_factory.mktemp("log") / "server.log", "wb")  # noqa: SIM115
    command = [
        sys.executable, "-m", "lenslab.server", "serve",
        "--model", "smollm2", "--model", str(tiny_path),
        "--host", "127.0.0.1", "--port", str(port), "--api-keys", str(keys),
        "--time-limit", str(TIME_LIMIT), "--max-result-mb", str(MAX_RESULT_MB),
        "--threads", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    found = Server(f"http://127.0.0.1:{port}", KEY, tiny_path, process)
    try:
        wait_ready(found, START_TIMEOUT)
        yield found
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_ready(server: Server, timeout: float) -> dict:
    """Wait until every hosted model is ready (bounded); the last health report."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            health = server.health()
            if all(m["state"] == "ready" for m in health["models"].values()):
                return health
        time.sleep(0.5)
    raise TimeoutError(f"the server was not ready within {timeout} s")


@pytest.fixture(autouse=True)
def remote_settings(request):
    """Point remote=True at the test server (only for tests that use it)."""
    if "server" not in request.fixturenames:
        yield None
        return
    from lenslab.remote import CONFIG

    server = request.getfixturevalue("server")
    with CONFIG.use(host=server.url, api_key=server.key, status=False, wait=120.0) as settings:
        yield settings


@pytest.fixture(scope="session")
def tiny_local(tiny_path):
    """The same tiny checkpoint, loaded here for local ground truth."""
    from lenslab import LanguageModel

    return LanguageModel(str(tiny_path), dispatch=True)


@pytest.fixture(scope="session")
def smollm2_client():
    """SmolLM2 for remote traces: never dispatched here, the weights stay on the server."""
    from lenslab import LanguageModel

    return LanguageModel("smollm2")
