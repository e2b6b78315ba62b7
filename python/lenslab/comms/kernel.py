"""The sidebar's comm target in an IPython kernel: ``register(shell, inspector)``.

The front end opens a comm to target ``"lenslab"`` (over a kernel subshell when the kernel has
them, so requests are answered while a cell runs) and sends requests; each gets one reply on
the same comm. The kernel never sends anything unasked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .protocol import TARGET_NAME
from .sidebar import Inspector, Sidebar

_log = logging.getLogger("lenslab")
_registered: dict[int, Sidebar] = {}


def register(
    shell: Any,
    inspector: Inspector,
    *,
    version: str = "",
    add_trace_listener: Callable[[Callable[[Any], None]], Any] | None = None,
    saved_of: Callable[[Any], list[Any] | None] | None = None,
    origin_of: Callable[[Any], str] | None = None,
) -> Sidebar | None:
    """Serve the lab sidebar from ``shell`` (an IPython kernel shell); once per shell.

    Args:
        shell: ``get_ipython()``; anything without a kernel comm manager is left alone.
        inspector: describes models and values (see ``Sidebar``).
        version: lenslab's version, for the sidebar.
        add_trace_listener: registers a callable told about each closed trace.
        saved_of: what a closed trace saved (``None`` to ignore that trace, e.g. a scan).
        origin_of: which lenslab widget or tool ran a closed trace ("" for user code).

    Returns:
        The ``Sidebar`` serving this shell, or ``None`` outside a Jupyter kernel.
    """
    existing = _registered.get(id(shell))
    if existing is not None:
        return existing
    manager = getattr(getattr(shell, "kernel", None), "comm_manager", None)
    if manager is None or not hasattr(shell, "events"):
        return None
    sidebar = Sidebar(shell.user_ns, inspector, version)
    manager.register_target(TARGET_NAME, lambda comm, message: handle_open(sidebar, comm, message))
    shell.events.register("pre_run_cell", sidebar.before_cell)
    shell.events.register("post_run_cell", sidebar.after_cell)
    if add_trace_listener is not None and saved_of is not None:

        def on_trace_closed(tracer: Any) -> None:
            saved = saved_of(tracer)
            if saved is not None:
                sidebar.trace_closed(saved, origin_of(tracer) if origin_of is not None else "")

        add_trace_listener(on_trace_closed)
    _registered[id(shell)] = sidebar
    return sidebar


def handle_open(sidebar: Sidebar, comm: Any, message: dict[str, Any]) -> None:
    """A front end opened a comm: answer its requests, and the one in the open message."""

    def on_message(incoming: dict[str, Any]) -> None:
        comm.send(sidebar.handle(incoming["content"]["data"]))

    comm.on_msg(on_message)
    data = message.get("content", {}).get("data")
    if data:
        comm.send(sidebar.handle(data))
