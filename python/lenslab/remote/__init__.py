"""Remote execution, client side: ``remote=True`` sends a with-block to a lenslab server.

config.py (where, with which key), block.py (the block's source), values.py and protocol.py
(the wire format), client.py (HTTP), tracer.py (the with-blocks), errors.py.
"""

from .config import CONFIG, RemoteSettings
from .errors import (
    RemoteAuthError,
    RemoteCodeError,
    RemoteConnectionError,
    RemoteError,
    RemoteJobError,
    RemoteModelError,
    RemoteVersionError,
)

__all__ = [
    "CONFIG",
    "RemoteAuthError",
    "RemoteCodeError",
    "RemoteConnectionError",
    "RemoteError",
    "RemoteJobError",
    "RemoteModelError",
    "RemoteSettings",
    "RemoteVersionError",
]
