"""A worker that dies while idle is noticed (by /health and before the next job) and replaced;
the next job, sent right after the kill, succeeds instead of paying for it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import torch

from ..remote.conftest import wait_ready


def worker_pid(server) -> int:
    return httpx.get(f"{server.url}/v1/models", timeout=10).json()["models"][0]["pid"]


def test_the_next_job_after_an_idle_worker_is_killed_succeeds(raw_server, tiny_local):
    wait_ready(raw_server, 120)
    killed = worker_pid(raw_server)
    os.kill(killed, signal.SIGKILL)
    with tiny_local.trace("The cat sat", remote=True):  # sent at once: no waiting for health
        remote = tiny_local.output.logits.save()
    with tiny_local.trace("The cat sat"):
        local = tiny_local.output.logits.save()
    assert torch.allclose(remote, local, atol=1e-5)
    assert worker_pid(raw_server) != killed


def dead(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not yet reaped by the server counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


def test_health_never_says_ready_for_a_dead_worker(raw_server):
    wait_ready(raw_server, 120)
    killed = worker_pid(raw_server)
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 60  # bounds the loop; nothing here asserts a duration
    while not dead(killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dead(killed)
    state = raw_server.health()["models"]["tiny-llama"]["state"]
    assert state != "ready" or worker_pid(raw_server) != killed
    health = wait_ready(raw_server, 120)
    assert health["models"]["tiny-llama"]["state"] == "ready"
    assert worker_pid(raw_server) != killed
