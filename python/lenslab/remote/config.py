"""Where remote jobs go and with which key: ``CONFIG``.

Settings are a frozen ``RemoteSettings``; ``CONFIG`` holds the process default (nnsight's
``CONFIG.set_default_api_key(...)`` works as is) and ``CONFIG.use(...)`` changes them for one
``with`` block (this thread / task only). Unset values come from the environment at use time:
``LENSLAB_HOST``, and ``LENSLAB_API_KEY`` (``NDIF_API_KEY`` is accepted too).

nnsight's settings objects are there too, so its configuration lines run unchanged:
``CONFIG.API.HOST`` / ``APIKEY`` are the remote host and key, ``CONFIG.APP.REMOTE_LOGGING`` the
status display; the rest name nnsight mechanisms lenslab does without (``PYMOUNT``: ``.save()``
works on any object in a block without mounting anything) and are accepted as no-ops, except
``CROSS_INVOKER = False``, which lenslab cannot honour and says so.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..errors import LensError, LensWarning

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


class SettingError(LensError, AttributeError):
    """A ``CONFIG.APP`` / ``CONFIG.API`` name that nnsight's configuration does not have."""


class _Section:
    """One of nnsight's settings groups: only its known names, each read and set through
    ``_get`` / ``_set`` so the value lands where lenslab keeps it."""

    _names: tuple[str, ...] = ()

    def __init__(self, config: Config) -> None:
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        self._check(name)
        return self._get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._check(name)
        self._set(name, value)

    def _check(self, name: str) -> None:
        if name not in self._names:
            raise SettingError(
                f"CONFIG.{type(self).__name__.strip('_').upper()} has no setting {name!r}; "
                f"its settings are {', '.join(self._names)}."
            )

    def _get(self, name: str) -> Any:
        return self._values.get(name, _DEFAULTS[name])

    def _set(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __repr__(self) -> str:
        return ", ".join(f"{name}={self._get(name)!r}" for name in self._names)


_DEFAULTS: dict[str, Any] = {
    "DEBUG": False, "REMOTE_LOGGING": True, "PYMOUNT": True, "CROSS_INVOKER": True,
    "DISABLE_CPP_BACKTRACE": True, "HOST": None, "APIKEY": None, "COMPRESS": True,
}  # fmt: skip


class _App(_Section):
    _names = ("DEBUG", "REMOTE_LOGGING", "PYMOUNT", "CROSS_INVOKER", "DISABLE_CPP_BACKTRACE")

    def _get(self, name: str) -> Any:
        if name == "REMOTE_LOGGING":
            return self._config.settings.status
        return super()._get(name)

    def _set(self, name: str, value: Any) -> None:
        if name == "REMOTE_LOGGING":
            self._config.set_status_display(bool(value))
            return
        if name == "CROSS_INVOKER" and not value:
            warnings.warn(
                "CONFIG.APP.CROSS_INVOKER = False: lenslab's invokes always see each other's "
                "values in forward order (nnsight's default), and cannot be isolated; run "
                "separate traces to keep them apart.",
                LensWarning,
                stacklevel=3,
            )
        super()._set(name, value)


class _Api(_Section):
    _names = ("HOST", "APIKEY", "COMPRESS")

    def _get(self, name: str) -> Any:
        settings = self._config.settings
        if name == "HOST":
            return settings.resolved_host()
        if name == "APIKEY":
            return settings.resolved_key()
        return super()._get(name)

    def _set(self, name: str, value: Any) -> None:
        if name == "HOST":
            self._config.set_default_host(str(value))
        elif name == "APIKEY":
            self._config.set_default_api_key(str(value))
        else:
            super()._set(name, value)


class Config:
    """The remote settings in effect; see the module docstring."""

    def __init__(self) -> None:
        self._default = RemoteSettings()
        self.APP = _App(self)  # nnsight's settings groups (module docstring)
        self.API = _Api(self)

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
