"""The source text a remote with-block sends: the statement itself, header rewritten.

On the server the block must open its trace on the hosted model, with inputs that travel as
data, so the header (``with model.trace(prompt, remote=True) as tracer:``) becomes
``with lenslab_remote_block() as tracer:``; every body line keeps its line number, so errors
point at the user's own lines.
"""

from __future__ import annotations

import ast
import linecache
from dataclasses import dataclass
from types import FrameType

from ..engine import source
from .protocol import RUN_NAME

# CPython 3.11 can fail ("AST constructor recursion depth mismatch") when threads parse or
# compile ASTs at once; remote blocks opened from many threads take turns here.


@dataclass(frozen=True)
class RemoteBlock:
    """One with statement, ready to send."""

    source: str  # the statement, dedented, header rewritten
    filename: str
    line: int  # the header's line in ``filename``
    as_name: str | None  # ``as tracer``
    reads: frozenset[str]  # names the body reads (some may be bound by the body itself)


def remote_block(frame: FrameType) -> RemoteBlock | None:
    """The with statement whose header runs in ``frame``; None without source."""
    filename = frame.f_code.co_filename
    best = source.with_statement_at(filename, frame.f_lineno)
    if best is None or best.end_lineno is None:
        return None
    lines = linecache.getlines(filename)
    target = best.items[0].optional_vars if len(best.items) == 1 else None
    as_name = target.id if isinstance(target, ast.Name) else None
    return RemoteBlock(
        source=_rewrite(lines, best, as_name),
        filename=filename,
        line=best.lineno,
        as_name=as_name,
        reads=frozenset(
            node.id
            for stmt in best.body
            for node in ast.walk(stmt)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        ),
    )


def _rewrite(lines: list[str], node: ast.With, as_name: str | None) -> str:
    indent = node.col_offset
    header = f"with {RUN_NAME}()" + (f" as {as_name}" if as_name else "") + ":"
    first = node.body[0]
    text = [line.rstrip("\r\n") for line in lines[node.lineno - 1 : node.end_lineno]]
    if first.lineno == node.lineno:  # `with ...: body` on one line
        raw = text[0].encode()
        text[0] = header + " " + raw[first.col_offset :].decode()
    else:
        text[0] = header
        for i in range(1, first.lineno - node.lineno):
            text[i] = ""
    out = [text[0]]
    for line in text[1:]:
        head = line[:indent]
        out.append(line[indent:] if not head.strip() else line)
    return "\n".join(out) + "\n"
