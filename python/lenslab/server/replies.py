"""Reply messages, each checked against the server's result limit before it leaves the worker.

Results, failures and printed output all count: a reply over the limit becomes a "limit"
failure, and a failure's own text (printed output, an exception's message) is cut with a note
until it fits, so no reply is ever larger than ``max_result`` bytes.
"""

from __future__ import annotations

import builtins
from typing import Any

from ..remote.protocol import JobFailure, pack

NOTE = "\n[lenslab server: cut here, over this server's result limit of {limit:.1f} MB]\n"


def failure_document(
    category: str,
    error: BaseException,
    message: str,
    stdout: str,
    line: int | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    bases = [
        cls.__name__
        for cls in type(error).__mro__[1:]
        if getattr(builtins, cls.__name__, None) is cls and issubclass(cls, Exception)
    ]
    document: JobFailure = {
        "kind": "error",
        "category": category,
        "type": type(error).__name__,
        "bases": bases,
        "message": message,
        "line": line,
        "code": code,
        "stdout": stdout,
    }
    return dict(document)


def too_big(size: int, limit: int) -> str:
    return (
        f"the job's result is {size / 1e6:.1f} MB, over this server's limit of "
        f"{limit / 1e6:.1f} MB. Bind (or .save()) less in the block: a slice, a mean, or only "
        "the positions you need; every name the block binds is sent back, and printed output "
        "counts too."
    )


def fit(document: dict[str, Any], tensors: dict[str, Any], limit: int) -> bytes:
    """``document`` packed, or (over ``limit``) a failure that fits, saying what was cut."""
    message = pack(document, tensors)
    if len(message) <= limit:
        return message
    stdout = str(document.get("stdout", ""))
    note = NOTE.format(limit=limit / 1e6)
    for _ in range(4):  # printed output gives way first: the values are what was asked for
        over = len(message) - limit
        if over <= 0:
            return message
        if not stdout:
            break
        stdout = stdout[: max(len(stdout) - over - len(note) - 1024, 0)]
        message = pack(dict(document, stdout=stdout + note), tensors)
    if len(message) <= limit:
        return message
    if document.get("kind") != "error":
        document = failure_document(
            "limit", _Limit(), too_big(len(message), limit), document.get("stdout", "")
        )
        tensors = {}
    return _cut(document, limit)


class _Limit(RuntimeError):
    pass


def _cut(document: dict[str, Any], limit: int) -> bytes:
    """Shorten the failure's free text (printed output first, then the message) to fit."""
    note = NOTE.format(limit=limit / 1e6)
    bare = dict(document, stdout="", message=str(document.get("message", ""))[:2000], code=None)
    room = limit - len(pack(bare, {})) - 4 * len(note)
    # JSON may spend up to 6 bytes on one character (\\u0000): budget for the worst case.
    chars = max(room // 6, 0)
    stdout = str(document.get("stdout", ""))
    message = str(document.get("message", ""))
    for_message = min(len(message), chars // 4)
    for_stdout = chars - for_message
    cut_message = message if len(message) <= for_message else message[:for_message] + note
    cut_stdout = stdout if len(stdout) <= for_stdout else stdout[:for_stdout] + note
    shaped = dict(document, stdout=cut_stdout, message=cut_message)
    packed = pack(shaped, {})
    if len(packed) <= limit:
        return packed
    return pack(dict(bare, message=bare["message"][: max(limit // 12, 0)]), {})
