"""The shape of a job document, checked in the HTTP process before anything else reads it.

Every field is checked for type and bounds here, so a malformed request gets a 400 naming the
field instead of reaching code that assumes the shape (and answering 500). Checks are
iterative: a document nested 100,000 deep is refused, not a ``RecursionError``.
"""

from __future__ import annotations

from typing import Any

METHODS = frozenset({"trace", "generate", "session"})
MAX_DEPTH = 64
MAX_NAMES = 10_000
MAX_LINE = 10_000_000


class MalformedJob(ValueError):
    """The job document does not have the shape of a lenslab job."""


def validate(document: dict[str, Any]) -> None:
    """Raise ``MalformedJob`` naming the first field that is wrong."""
    _depth(document)
    for field in ("model", "source", "filename"):
        _text(document, field)
    if document.get("method") not in METHODS:
        raise MalformedJob(f'"method" must be one of {sorted(METHODS)}')
    line = document.get("line")
    if type(line) is not int or not 1 <= line <= MAX_LINE:
        raise MalformedJob(f'"line" must be a whole number from 1 to {MAX_LINE}')
    variables = document.get("variables")
    if not isinstance(variables, dict):
        raise MalformedJob('"variables" must be an object mapping names to encoded values')
    _names(list(variables), "variables")
    for field in ("model_names", "returns"):
        value = document.get(field)
        if not isinstance(value, list):
            raise MalformedJob(f'"{field}" must be a list of names')
        _names(value, field)
    if not isinstance(document.get("inputs"), dict):
        raise MalformedJob('"inputs" must be an encoded {"args": [...], "kwargs": {...}}')


def _text(document: dict[str, Any], field: str) -> None:
    value = document.get(field)
    if not isinstance(value, str):
        raise MalformedJob(f'"{field}" must be a string')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJob(f'"{field}" holds a character that is not valid UTF-8') from None


def _names(names: list[Any], field: str) -> None:
    if len(names) > MAX_NAMES:
        raise MalformedJob(f'"{field}" holds more than {MAX_NAMES} names')
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise MalformedJob(f'"{field}" holds {str(name)[:40]!r}, which is not a Python name')


def _depth(document: Any) -> None:
    todo = [(document, 0)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise MalformedJob(f"the job document is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)
