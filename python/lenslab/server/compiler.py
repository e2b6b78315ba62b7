"""One compiler and one gate for every body of a remote block.

The engine runs some bodies itself: ``tracer.invoke(...)`` blocks, ``model.edit()`` bodies and
the traces inside a session are re-read from the job's source and compiled by
``lenslab.engine.source``. Compiled plainly, they would skip the guards the main body gets
(that is how ``backend_tokenizer.save(PATH)`` in an invoke once wrote a file). ``install``
makes the worker compile every body whose file is a job's with the same ``RemotePolicy``, and
adds an audit hook that refuses to ``exec`` any code object from a job's file that this module
did not produce: should a future engine path compile job code some other way, the job fails
loudly instead of running unguarded.
"""

from __future__ import annotations

import ast
import copy
import sys
import weakref
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_exec

from .policy import RemotePolicy

JOB_PREFIX = "<lenslab job "

_approved: weakref.WeakSet[CodeType] = weakref.WeakSet()
_installed = False


class UnguardedCode(PermissionError):
    """Code from a job's file that did not go through the sandbox's compiler."""


def job_filename(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id[:8]}>"


def is_job_file(filename: str) -> bool:
    return filename.startswith(JOB_PREFIX)


def approve(code: CodeType) -> CodeType:
    """Mark ``code`` (compiled under the policy) as allowed to run."""
    _approved.add(code)
    return code


def compile_body(body: list[ast.stmt], filename: str) -> CodeType | None:
    """A with-block's body, compiled under the same rules as the whole block.

    None where the body cannot run on its own (``return``/``yield``), as the engine expects.
    """
    tree = ast.Module(body=copy.deepcopy(body), type_ignores=[])
    result = compile_restricted_exec(tree, filename, policy=RemotePolicy)
    if result.errors or result.code is None:
        return None
    return approve(result.code)


def _gate(event: str, args: tuple[Any, ...]) -> None:
    if event != "exec" or not args or not isinstance(args[0], CodeType):
        return
    code = args[0]
    if is_job_file(code.co_filename) and code not in _approved:
        raise UnguardedCode(
            "the lenslab server refused to run part of the block that was not compiled by its "
            "sandbox; this is a server bug, please report it."
        )


def install() -> None:
    """Route the engine's body compiler through ``compile_body``; add the exec gate (once)."""
    global _installed
    if _installed:
        return
    from ..engine import source

    def body(statements: list[ast.stmt], filename: str) -> CodeType | None:
        if is_job_file(filename):
            return compile_body(statements, filename)
        return source.plain_body(statements, filename)

    def index(node: ast.expr) -> Any:
        # Indices are evaluated outside any guard: only names, numbers and arithmetic.
        if any(isinstance(n, (ast.Attribute, ast.Call, ast.Subscript)) for n in ast.walk(node)):
            return None
        return source.plain_index(node)

    source.set_body_compiler(source.BodyCompiler(body=body, index=index))
    sys.addaudithook(_gate)
    _installed = True
