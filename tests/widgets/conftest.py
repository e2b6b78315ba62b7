"""Helpers for widget tests: what a widget sends to its front end, and simulated front-end
messages (exactly what the browser's widget manager sends over the comm)."""

from __future__ import annotations

import threading
from typing import Any

import pytest


class Wire:
    """Every comm message a widget sent: ``updates(name)`` / ``custom()`` pick them out."""

    def __init__(self, widget: Any) -> None:
        self.messages: list[tuple[dict[str, Any], list[Any]]] = []
        original = widget.comm.send

        def send(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            self.messages.append((data, list(buffers or [])))
            original(data=data, metadata=metadata, buffers=buffers)

        widget.comm.send = send

    def updates(self, name: str) -> list[tuple[dict[str, Any], list[Any]]]:
        return [
            (m, b)
            for m, b in self.messages
            if m.get("method") in ("update", "echo_update")
            and (name in m["state"] or [name] in m.get("buffer_paths", []))
        ]

    def custom(self) -> list[dict[str, Any]]:
        return [m["content"] for m, _ in self.messages if m.get("method") == "custom"]


@pytest.fixture
def wire():
    return Wire


def front_end_sets(widget: Any, **state: Any) -> None:
    """The front end changed traits (a click, a slider): an ``update`` comm message."""
    widget._handle_msg(
        {
            "content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
            "buffers": [],
        }
    )


def front_end_sends(widget: Any, content: dict[str, Any]) -> None:
    """The front end sent a custom request (``{"kind": "patch", "id": 1, ...}``)."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    )


def pause_at(widget: Any, done: int) -> tuple[threading.Event, threading.Event]:
    """Hold a widget's run once it reports ``done`` steps (the first time): returns
    ``(reached, go)``; wait on ``reached``, then set ``go`` to let the run continue."""
    reached, go = threading.Event(), threading.Event()
    report = widget.report

    def pausing(now: int, total: int) -> None:
        report(now, total)
        if now == done and not reached.is_set():
            reached.set()
            go.wait(60)

    widget.report = pausing
    return reached, go
