"""The JupyterLab sidebar's kernel side: a comm target answering read-only snapshots.

Never imports torch or the engine: ``lenslab._lab`` hands it an ``Inspector`` at registration.
"""

from .kernel import register
from .protocol import PROTOCOL_VERSION, TARGET_NAME, ProtocolError
from .sidebar import Inspector, Sidebar

__all__ = ["PROTOCOL_VERSION", "TARGET_NAME", "Inspector", "ProtocolError", "Sidebar", "register"]
