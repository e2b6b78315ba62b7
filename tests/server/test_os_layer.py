"""The OS layer holds on its own: with the Python sandbox off (test mode), a block is plain
Python in the worker, and still cannot write outside its scratch directory, connect, start a
process or signal the server; its rlimits are set and cannot be raised."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import httpx
import pytest

from lenslab.server.confine import landlock_abi

pytestmark = pytest.mark.skipif(
    landlock_abi() < 6, reason="this kernel lacks Landlock ABI 6 (the worker warns at start-up)"
)


def sandbox(server) -> dict:
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()["models"]
    return models[0]["sandbox"]


def test_the_worker_reports_every_layer_in_force(raw_server):
    report = sandbox(raw_server)
    assert report["missing"] == []
    assert "file writes outside the scratch directory" in report["confined"]
    assert {"sockets", "exec", "new processes"} <= set(report["confined"])


def test_no_file_outside_the_scratch_directory_can_be_written(raw_server, tiny_local, tmp_path):
    target = str(tmp_path / "escape.txt")
    with pytest.raises(PermissionError):
        with tiny_local.trace("hello", remote=True):
            import os as system

            system.open(target, system.O_WRONLY | system.O_CREAT)
    with pytest.raises(Exception, match="ermission denied"):  # Rust code, under Python's reach
        with tiny_local.trace("hello", remote=True):
            tiny_local.tokenizer.backend_tokenizer.save(target)
    assert not os.path.exists(target)


def test_the_scratch_directory_is_writable(raw_server, tiny_local):
    with tiny_local.trace("hello", remote=True):
        import os as system

        with open("inside-scratch.txt", "w") as file:
            file.write("scratch")
        where = system.getcwd()
    assert os.path.basename(where).startswith("lenslab-")


def test_no_connection_can_be_opened(raw_server, tiny_local):
    port = urlparse(raw_server.url).port
    with pytest.raises(PermissionError):
        with tiny_local.trace("hello", remote=True):
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=5)
    with pytest.raises(PermissionError):
        with tiny_local.trace("hello", remote=True):
            import socket

            socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def test_no_process_can_be_started(raw_server, tiny_local, tmp_path):
    marker = str(tmp_path / "spawned")
    with pytest.raises(PermissionError):
        with tiny_local.trace("hello", remote=True):
            import subprocess

            subprocess.run(["/bin/touch", marker])
    with pytest.raises(PermissionError):
        with tiny_local.trace("hello", remote=True):
            import os as system

            system.fork()
    with tiny_local.trace("hello", remote=True):
        import os as system

        status = system.system(f"touch {marker}")
    assert status != 0
    assert not os.path.exists(marker)


def test_the_server_cannot_be_signalled(raw_server, tiny_local):
    with pytest.raises(PermissionError):
        with tiny_local.trace("hello", remote=True):
            import os as system
            import signal

            system.kill(system.getppid(), signal.SIGTERM)
    assert raw_server.health()["status"] == "ok"


def test_rlimits_are_set_and_cannot_be_raised(raw_server, tiny_local):
    with tiny_local.trace("hello", remote=True):
        import resource

        files = resource.getrlimit(resource.RLIMIT_NOFILE)
        memory = resource.getrlimit(resource.RLIMIT_AS)
        cpu = resource.getrlimit(resource.RLIMIT_CPU)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (-1, -1))
            raised = "raised"
        except ValueError:
            raised = "refused"
    assert files == [512, 512] or files == (512, 512)
    assert memory[0] == memory[1] > 0 and cpu[0] == cpu[1] > 0
    assert raised == "refused"
