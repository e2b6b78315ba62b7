"""Raw job messages over plain HTTP, for tests that speak to the server without the client."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx

from lenslab.remote.protocol import pack


def document(**changes: Any) -> dict[str, Any]:
    """A valid job document for the tiny model (``changes`` replace its fields)."""
    base: dict[str, Any] = {
        "kind": "job",
        "model": "tiny-llama",
        "method": "trace",
        "source": "with lenslab_remote_block():\n    x = 1\n",
        "filename": "raw.py",
        "line": 1,
        "inputs": {"$dict": [["args", ["hello"]], ["kwargs", {"$dict": []}]]},
        "variables": {},
        "model_names": ["model"],
        "returns": ["x"],
        "client": {},
    }
    base.update(changes)
    return base


def raw_message(document_text: str, extra_header: str = "") -> bytes:
    """A message whose document is ``document_text`` as is (it may be invalid JSON)."""
    metadata = json.dumps({"lenslab-wire": "1", "lenslab": document_text})
    header = ('{"__metadata__": ' + metadata + extra_header + "}").encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def submit(server: Any, message: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/jobs",
        content=message,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    )


def run(server: Any, doc: dict[str, Any]) -> bytes:
    """Submit ``doc``, wait for it, and return the raw reply bytes."""
    response = submit(server, pack(doc, {}))
    assert response.status_code == 202, response.text
    job = response.json()["id"]
    headers = {"Authorization": f"Bearer {server.key}"}
    for _ in range(100):  # each wait is a long poll of up to 30 s
        status = httpx.get(f"{server.url}/v1/jobs/{job}?wait=30", headers=headers, timeout=60)
        if status.json()["status"] in {"done", "failed"}:
            break
    result = httpx.get(f"{server.url}/v1/jobs/{job}/result", headers=headers, timeout=60)
    assert result.status_code == 200, result.text
    return result.content
