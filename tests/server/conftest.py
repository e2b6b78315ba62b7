"""A real lenslab server on 127.0.0.1 whose Python sandbox is OFF (test mode), hosting the tiny
random Llama only.

With the Python layer off, a block is plain Python in the worker process: exactly what code that
slipped past the policy and guards could do. What still stops it is the OS layer (Landlock,
seccomp, rlimits) and the model-identity check, which is what these tests are about.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lenslab.server.policy import UNGUARDED_ENV

from ..lab_server import free_port
from ..remote.conftest import KEY, START_TIMEOUT, Server, tiny_local, tiny_path, wait_ready

__all__ = ["tiny_local", "tiny_path"]

TIME_LIMIT = 30


@pytest.fixture(scope="session")
def raw_server(tiny_path, tmp_path_factory) -> Iterator[Server]:
    keys = tmp_path_factory.mktemp("raw-keys") / "keys.txt"
    keys.write_text(f"{KEY}\n")
    port = free_port()
    log = open(tmp_path_factory.mktemp("raw-log") / "server.log", "wb")  # noqa: SIM115
    command = [
        sys.executable, "-m", "lenslab.server", "serve", "--model", str(tiny_path),
        "--host", "127.0.0.1", "--port", str(port), "--api-keys", str(keys),
        "--time-limit", str(TIME_LIMIT), "--max-result-mb", "4", "--threads", "1",
    ]  # fmt: skip
    env = dict(os.environ, **{UNGUARDED_ENV: "yes, for a test"})
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
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


@pytest.fixture(autouse=True)
def raw_settings(request):
    """Point remote=True at the test-mode server (only for tests that use it)."""
    if "raw_server" not in request.fixturenames:
        yield None
        return
    from lenslab.remote import CONFIG

    server = request.getfixturevalue("raw_server")
    with CONFIG.use(host=server.url, api_key=server.key, status=False, wait=120.0) as settings:
        yield settings
