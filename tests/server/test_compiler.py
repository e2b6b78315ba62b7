"""One compiler for every body: once installed (as every worker does), the engine compiles a
job's deferred bodies under the sandbox policy, and code from a job's file that did not go
through it is refused by the exec gate. No server needed: this is the worker's own wiring."""

from __future__ import annotations

import ast

import pytest

from lenslab.engine import source
from lenslab.server import compiler

JOB = compiler.job_filename("0123456789abcdef")
BODY = "tokens = model.tokenizer.backend_tokenizer\n"


@pytest.fixture(scope="module", autouse=True)
def installed():
    compiler.install()


def test_the_engine_compiles_a_job_body_with_the_guards():
    code = source.body_compiler().body(ast.parse(BODY).body, JOB)
    assert code is not None
    assert "_getattr_" in code.co_names  # every attribute read goes through the guard
    seen = []

    def guard(obj, name):
        seen.append(name)
        if name != "tokenizer":
            raise PermissionError(name)
        return object()

    with pytest.raises(PermissionError, match="backend_tokenizer"):
        exec(code, {"_getattr_": guard, "model": object()})
    assert seen == ["tokenizer", "backend_tokenizer"]


def test_bodies_of_other_files_are_compiled_as_before():
    code = source.body_compiler().body(ast.parse(BODY).body, "notebook.py")
    assert code is not None and "_getattr_" not in code.co_names


def test_plain_code_from_a_job_file_is_refused_by_the_gate():
    plain = compile("x = 1\n", JOB, "exec")
    with pytest.raises(compiler.UnguardedCode, match="not compiled by its sandbox"):
        exec(plain, {})
    exec(compile("x = 1\n", "elsewhere.py", "exec"), {})  # other code is not affected


def test_indices_with_attribute_reads_are_not_evaluated_unguarded():
    index = ast.parse("layers[cfg.n]", mode="eval").body.slice
    assert source.body_compiler().index(index) is None
    simple = ast.parse("layers[n + 1]", mode="eval").body.slice
    assert source.body_compiler().index(simple) is not None
