"""The wire format between a lenslab client and server: versioned, and never a pickle.

Every job and every result is one safetensors file: the tensors it carries are the file's
tensors (named ``t0``, ``t1``, ...), and its JSON document sits in the file's metadata under
``"lenslab"``, next to ``"lenslab-wire"``, the format version. The block's code travels as
source text. Reading a message needs no torch (the server's HTTP process never imports it):
the safetensors header is an 8-byte length and a JSON object.

Values inside documents use a small JSON encoding (see ``values.py``): ``{"$tensor": "t0"}``,
``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}`` and a few more.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Literal, TypedDict

WIRE_VERSION = 1
_VERSION_KEY = "lenslab-wire"
_DOC_KEY = "lenslab"
MAX_HEADER = 64 * 1024 * 1024

Method = Literal["trace", "generate", "session"]


class JobRequest(TypedDict):
    """What a client sends: one with-block, its inputs, and the values its code uses."""

    kind: Literal["job"]
    model: str  # the hosted model's name
    method: Method
    source: str  # the with statement, its header rewritten to ``with RUN_NAME() as name:``
    filename: str  # where the block was written, for error messages
    line: int  # the line of the with statement in that file
    inputs: Any  # encoded {"args": [...], "kwargs": {...}} for model.trace / model.generate
    variables: dict[str, Any]  # encoded values of the names the code reads from its scope
    model_names: list[str]  # names bound to the model in the caller's scope
    returns: list[str]  # names the block binds: their values come back
    client: dict[str, str]  # lenslab and Python versions, for messages


class JobResult(TypedDict):
    """What a finished job sends back."""

    kind: Literal["result"]
    values: dict[str, Any]  # encoded values of the bound names that could be sent
    result: Any  # the trace's result (generation: the token ids), or None
    stdout: str  # what the code printed


class JobFailure(TypedDict):
    """Why a job failed: the user's own exception, or a server limit."""

    kind: Literal["error"]
    category: str  # "user", "code", "limit", "crash"
    type: str  # the exception's class name
    bases: list[str]  # its builtin base classes, most specific first
    message: str
    line: int | None  # the user's line where it was raised
    code: str | None  # that line's text
    stdout: str


RUN_NAME = "lenslab_remote_block"  # the call that opens the block's trace on the server


class EnvelopeError(ValueError):
    """Bytes that are not a lenslab message."""


class VersionMismatch(EnvelopeError):
    """A message in another version of the wire format."""

    def __init__(self, theirs: str) -> None:
        super().__init__(f"wire format {theirs}, expected {WIRE_VERSION}")
        self.theirs = theirs


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The safetensors header of ``data`` and where the tensor bytes start."""
    if len(data) < 8:
        raise EnvelopeError("the message is shorter than a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER or 8 + size > len(data):
        raise EnvelopeError("the message's safetensors header is cut off or too large")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as error:
        raise EnvelopeError(f"the message's header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise EnvelopeError("the message's header is not a JSON object")
    return header, 8 + size


def read_document(data: bytes) -> dict[str, Any]:
    """The JSON document of a message, after checking its wire-format version."""
    header, _ = read_header(data)
    metadata = header.get("__metadata__") or {}
    version = metadata.get(_VERSION_KEY)
    if version is None:
        raise EnvelopeError("the message carries no lenslab wire-format version")
    if version != str(WIRE_VERSION):
        raise VersionMismatch(str(version))
    try:
        document = json.loads(metadata.get(_DOC_KEY, ""))
    except ValueError as error:
        raise EnvelopeError(f"the message's document is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise EnvelopeError("the message's document is not a JSON object")
    return document


def metadata_for(document: dict[str, Any], version: int = WIRE_VERSION) -> dict[str, str]:
    """The safetensors metadata that carries ``document``."""
    return {_VERSION_KEY: str(version), _DOC_KEY: json.dumps(document, allow_nan=False)}


def pack(document: dict[str, Any], tensors: dict[str, Any], version: int = WIRE_VERSION) -> bytes:
    """One message: ``tensors`` (torch tensors) and ``document`` as a safetensors file."""
    metadata = metadata_for(document, version)
    if not tensors:  # no torch needed: the header alone is a valid safetensors file
        header = json.dumps({"__metadata__": metadata}).encode()
        header += b" " * (-len(header) % 8)
        return struct.pack("<Q", len(header)) + header
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document and the tensors of a message."""
    document = read_document(data)
    header, _ = read_header(data)
    if not [key for key in header if key != "__metadata__"]:
        return document, {}
    from safetensors.torch import load

    return document, load(data)
