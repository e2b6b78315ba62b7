"""The supported seam for compiling with-block bodies (what `lenslab serve` routes through its
sandbox), and the bound on the parse cache."""

from __future__ import annotations

import ast
import linecache
from types import CodeType

import torch
from torch import nn

from lenslab import NNsight
from lenslab.engine import source


def test_invoke_bodies_are_compiled_by_the_chosen_compiler():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    model = NNsight(net)
    compiled: list[str] = []

    def body(statements: list[ast.stmt], filename: str) -> CodeType | None:
        compiled.append(filename)
        return source.plain_body(statements, filename)

    previous = source.set_body_compiler(source.BodyCompiler(body=body))
    try:
        x = torch.randn(2, 3)
        with model.trace() as tracer, tracer.invoke(x):
            out = model.output.save()
    finally:
        restored = source.set_body_compiler(previous)
    assert restored.body is body and source.body_compiler() is previous
    assert compiled == [__file__]
    with torch.no_grad():
        assert torch.equal(out, net(x))
    with model.trace() as tracer, tracer.invoke(x):  # compiled plainly again
        model.output.save()
    assert compiled == [__file__]


def test_the_parse_cache_is_bounded_and_forgets_files():
    names = [f"<lenslab test file {i}>" for i in range(source._MAX_TREES + 10)]
    for name in names:
        text = "with a:\n    b = 1\n"
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        try:
            assert source.with_statement_at(name, 1) is not None
        finally:
            linecache.cache.pop(name, None)
    assert len(source._trees) <= source._MAX_TREES
    assert names[0] not in source._trees and names[-1] in source._trees
    source.forget_file(names[-1])
    assert names[-1] not in source._trees
