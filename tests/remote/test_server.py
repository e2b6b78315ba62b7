"""The server under load and trouble: limits, a client killed mid-job, 20 concurrent clients."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from lenslab.remote import RemoteJobError

from .conftest import TIME_LIMIT, wait_ready


def test_health_reports_versions_and_models(server):
    health = server.health()
    assert health["status"] == "ok" and health["wire"] == 1
    assert set(health["models"]) == {"smollm2", "tiny-llama"}


def test_an_oversize_result_is_rejected(server, tiny_local):
    with pytest.raises(RemoteJobError, match="over this server's limit"):
        with tiny_local.trace("hello", remote=True):
            big = torch.zeros(3_000_000) + tiny_local.output.logits.mean()  # noqa: F841 (12 MB)
    assert server.health()["models"]["tiny-llama"]["state"] == "ready"


def test_a_job_past_the_time_limit_is_stopped(server, tiny_local):
    started = time.monotonic()
    with pytest.raises(RemoteJobError, match="time limit"):
        with tiny_local.trace("hello", remote=True):
            while True:
                pass
    assert time.monotonic() - started < TIME_LIMIT + 30
    wait_ready(server, 120)
    with tiny_local.trace("hello", remote=True):
        out = tiny_local.model.layers[0].output.save()
    assert out.shape[0] == 1


CLIENT = """
import sys
import torch
from lenslab import LanguageModel
from lenslab.remote import CONFIG

CONFIG.set_default_host(sys.argv[1])
CONFIG.set_default_api_key(sys.argv[2])
CONFIG.set_status_display(False)
model = LanguageModel(sys.argv[3])
print("submitting", flush=True)
with model.trace("hello", remote=True):
    h = model.model.layers[0].output
    for i in range(600_000):  # about 2 s on the server
        h = h * 1.0
    out = h.save()
print("finished", flush=True)
"""


def test_a_client_killed_mid_job_leaves_the_server_healthy(server, tiny_local, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT))
    client = subprocess.Popen(
        [sys.executable, str(script), server.url, server.key, str(server.tiny_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not server.health()["models"]["tiny-llama"]["running"]:
            assert client.poll() is None, client.stdout.read().decode()
            assert time.monotonic() < deadline, "the client's job never started"
            time.sleep(0.05)
    finally:
        client.kill()
        client.wait()
    assert server.health()["status"] == "ok"
    with tiny_local.trace("The cat sat", remote=True):
        remote = tiny_local.model.layers[2].output.save()
    with tiny_local.trace("The cat sat"):
        local = tiny_local.model.layers[2].output.save()
    assert torch.allclose(remote, local, atol=1e-5)


def test_twenty_concurrent_clients_get_their_own_results(server, tiny_local):
    prompts = [f"Client number {i} says hello" for i in range(20)]
    expected = {}
    for i, prompt in enumerate(prompts):
        with tiny_local.trace(prompt):
            tiny_local.model.layers[0].output[:, -1] = float(i)
            expected[i] = tiny_local.model.layers[2].output.save()
    results: dict[int, torch.Tensor] = {}
    failures: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with tiny_local.trace(prompts[i], remote=True):
                tiny_local.model.layers[0].output[:, -1] = float(i)
                mine = tiny_local.model.layers[2].output.save()
            results[i] = mine
        except BaseException as error:
            failures.append(error)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(client, i)) for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert sorted(results) == list(range(20))
    for i in range(20):
        assert torch.allclose(results[i], expected[i], atol=1e-5), f"client {i} got another's"
