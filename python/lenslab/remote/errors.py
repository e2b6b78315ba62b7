"""Errors of remote execution, one family under ``LensError``.

    RemoteError
    ├── RemoteConnectionError  the server cannot be reached
    ├── RemoteAuthError        no API key, or the server rejected it
    ├── RemoteModelError       the server does not host this model (lists what it hosts)
    ├── RemoteVersionError     client and server speak different wire-format versions
    ├── RemoteCodeError        the block's code was rejected before it ran (sandbox rules)
    └── RemoteJobError         the job failed on the server: time limit, result size, crash

An exception raised by the block's own code on the server is re-raised locally as its own type
(builtin and lenslab exceptions), with the user's line in a note; other types become
``RemoteJobError``.
"""

from __future__ import annotations

from ..errors import LensError


class RemoteError(LensError):
    """Base of every remote-execution error."""


class RemoteConnectionError(RemoteError, ConnectionError):
    """The lenslab server could not be reached."""


class RemoteAuthError(RemoteError, PermissionError):
    """The request carried no API key, or one the server does not accept."""


class RemoteModelError(RemoteError, LookupError):
    """The server hosts no model of that name."""


class RemoteVersionError(RemoteError):
    """Client and server speak different versions of the wire format."""


class RemoteCodeError(RemoteError, PermissionError):
    """The server's sandbox rejected the block's code before running it."""


class RemoteJobError(RemoteError, RuntimeError):
    """The job could not finish on the server (time limit, result size, worker crash)."""
