"""Where remote jobs go and with which key: ``CONFIG``.

Settings are a frozen ``RemoteSettings``; ``CONFIG`` holds the process default (nnsight's
``CONFIG.set_default_api_key(...)`` works as is) and ``CONFIG.use(...)`` changes them for one
``with`` block (this thread / task only). Unset values come from the environment at use time:
``LENSLAB_HOST``, and ``LENSLAB_API_KEY`` (``NDIF_API_KEY`` is accepted too).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

DEFAULT_HOST = "http://127.0.0.1:8000"
KEY_VARIABLES = ("LENSLAB_API_KEY", "NDIF_API_KEY")


@dataclass(frozen=True)
class RemoteSettings:
    """One set of remote settings; ``None`` means "from the environment"."""

    host: str | None = None
    api_key: str | None = None
    status: bool = True  # show the job's status (queued / running / done) while waiting
    wait: float = 900.0  # seconds to wait for a job before giving up

    def resolved_host(self) -> str:
        host = self.host or os.environ.get("LENSLAB_HOST") or DEFAULT_HOST
        if "://" not in host:
            host = "http://" + host
        return host.rstrip("/")

    def resolved_key(self) -> str | None:
        if self.api_key:
            return self.api_key
        for name in KEY_VARIABLES:
            if os.environ.get(name):
                return os.environ[name]
        return None


_scoped: ContextVar[RemoteSettings | None] = ContextVar("lenslab_remote", default=None)


class Config:
    """The remote settings in effect; see the module docstring."""

    def __init__(self) -> None:
        self._default = RemoteSettings()

    @property
    def settings(self) -> RemoteSettings:
        """The settings a remote job started now would use."""
        return _scoped.get() or self._default

    def set_default_api_key(self, api_key: str) -> None:
        """Use ``api_key`` for every later remote job of this process."""
        self._default = dataclasses.replace(self._default, api_key=api_key)

    def set_default_host(self, host: str) -> None:
        """Send every later remote job of this process to ``host`` (``http://host:port``)."""
        self._default = dataclasses.replace(self._default, host=host)

    def set_status_display(self, show: bool) -> None:
        """Show (or hide) the queued / running / done status while a job runs."""
        self._default = dataclasses.replace(self._default, status=show)

    @contextmanager
    def use(self, **changes: Any) -> Iterator[RemoteSettings]:
        """These settings for the ``with`` block only: ``with CONFIG.use(host=...):``."""
        token = _scoped.set(dataclasses.replace(self.settings, **changes))
        try:
            yield _scoped.get()  # type: ignore[misc]
        finally:
            _scoped.reset(token)


CONFIG = Config()
