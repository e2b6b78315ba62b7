"""The source of a with-block: which module values it touches, and its body as code.

Two uses. Modules the body reads get their values kept as the forward passes them, so reads may
come in any order (code may read ``h[5].output`` before ``h[5].attn.output``). And the bodies of
``tracer.invoke(...)`` blocks are compiled here so that several invokes can run inside one
batched forward; a body that calls ``.save()`` on objects without their own (``[].save()``) is
compiled with those calls rewritten (rewrite.py). Source comes from ``linecache`` (files,
notebook cells); where there is none (a string run with ``exec``) these features step aside and
the block still works.
"""

from __future__ import annotations

import ast
import linecache
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from types import CodeType, FrameType
from typing import Any

from .kinds import INDEXED_KINDS, KINDS
from .passive import Passive, passive
from .rewrite import rewrite_saves


@dataclass(frozen=True)
class Access:
    """``root.steps...kind`` as written, e.g. ``model.model.layers[i].output``."""

    root: str
    steps: tuple[tuple[str, Any], ...]  # ("attr", name) or ("index", int | Index | None = any)
    kind: str

    @cached_property
    def variable(self) -> bool:
        """Whether an index must be evaluated where the block runs (``layers[i]``)."""
        return any(isinstance(arg, Index) for _, arg in self.steps)


@dataclass(frozen=True)
class Index:
    """A non-constant index such as ``layers[L]``: worth evaluating where its names are known."""

    code: CodeType
    names: frozenset[str]

    def evaluate(self, lookup: Any, unknown: frozenset[str]) -> int | None:
        """Its value, if every name it uses is bound before the block; None means "any"."""
        if self.names & unknown:
            return None
        scope = {name: lookup(name) for name in self.names}
        try:
            value = eval(self.code, {"__builtins__": {}}, scope)
        except Exception:
            return None
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class Block:
    """What lenslab needs to know about one with-block."""

    accesses: tuple[Access, ...]
    body: CodeType | None  # the body alone, compiled with its own file and line numbers
    assigned: frozenset[str]  # names the body binds
    body_line: int  # first line of the body
    header_calls: frozenset[str]  # methods called in the header, e.g. {"backward"}
    grad_names: frozenset[str]  # names whose .grad the body reads or sets
    passive: Passive | None  # when the body only keeps references (see passive.py)
    saves_anything: bool = False  # ``body`` routes some ``X.save()`` through save_any (rewrite.py)


_blocks: dict[tuple[int, int], tuple[CodeType, Block | None]] = {}
# Parsed files, least recently used first: bounded, since every notebook cell and every job of
# a server is a file name of its own.
_trees: OrderedDict[str, tuple[str, ast.Module | None]] = OrderedDict()
_MAX_CACHED = 4096
_MAX_TREES = 64
_parsing = threading.Lock()


def block_at(frame: FrameType) -> Block | None:
    """The with-block whose header is executing in ``frame``, or None without source."""
    code, line = frame.f_code, frame.f_lineno
    key = (id(code), line)
    hit = _blocks.get(key)
    if hit is not None and hit[0] is code:
        return hit[1]
    block = _find_block(code.co_filename, line)
    if len(_blocks) >= _MAX_CACHED:
        _blocks.clear()
    _blocks[key] = (code, block)
    return block


def _tree(filename: str) -> ast.Module | None:
    source = "".join(linecache.getlines(filename))
    if not source:
        return None
    cached = _trees.get(filename)
    if cached is not None and cached[0] == source:
        _trees.move_to_end(filename)
        return cached[1]
    try:
        with _parsing:  # CPython 3.11 can fail parsing from several threads at once
            tree: ast.Module | None = ast.parse(source, filename)
    except SyntaxError:
        tree = None
    _trees[filename] = (source, tree)
    _trees.move_to_end(filename)
    while len(_trees) > _MAX_TREES:
        _trees.popitem(last=False)
    return tree


def forget_file(filename: str) -> None:
    """Drop what was parsed and compiled from ``filename`` (a server job's, once it ended)."""
    _trees.pop(filename, None)
    for key, (code, _) in list(_blocks.items()):
        if code.co_filename == filename:
            _blocks.pop(key, None)


def with_statement_at(filename: str, line: int) -> ast.With | None:
    """The innermost with statement whose header spans ``line``; None without source."""
    tree = _tree(filename)
    if tree is None:
        return None
    best: ast.With | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and node.body:
            header_end = max(node.lineno, node.body[0].lineno - 1)
            if node.lineno <= line <= header_end and (best is None or node.lineno >= best.lineno):
                best = node
    return best


def _find_block(filename: str, line: int) -> Block | None:
    best = with_statement_at(filename, line)
    if best is None:
        return None
    rewritten = rewrite_saves(best.body)
    body = _compiler.body(rewritten or best.body, filename)
    return Block(
        accesses=tuple(_accesses(best.body)),
        body=body,
        assigned=frozenset(_assigned(best.body)),
        body_line=best.body[0].lineno,
        header_calls=frozenset(
            node.func.attr
            for item in best.items
            for node in ast.walk(item.context_expr)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        ),
        grad_names=_grad_names(best.body),
        passive=passive(best.body),
        saves_anything=rewritten is not None and body is not None,
    )


def _grad_names(body: list[ast.stmt]) -> frozenset[str]:
    """The names a backward block reads or sets ``.grad`` through: ``h.grad``, ``hs[0].grad``
    (``hs``), and ``t.grad`` in ``for t in hs`` (``hs``), so their tensors can be watched
    before the backward starts and gradients read in any order."""
    names: set[str] = set()
    loops: dict[str, set[str]] = {}  # a loop variable -> the names its iterable comes from
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name):
                loops.setdefault(node.target.id, set()).update(
                    n.id for n in ast.walk(node.iter) if isinstance(n, ast.Name)
                )
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and node.attr == "grad":
                root = node.value
                while isinstance(root, ast.Subscript):
                    root = root.value
                if isinstance(root, ast.Name):
                    names.add(root.id)
                    names.update(loops.get(root.id, ()))
    return frozenset(names)


def plain_body(body: list[ast.stmt], filename: str) -> CodeType | None:
    """A with-block's body compiled as it stands; None if it cannot run alone."""
    try:
        with _parsing:
            return compile(ast.Module(body=body, type_ignores=[]), filename, "exec")
    except SyntaxError:  # return / yield / nonlocal: the body cannot run on its own
        return None


def _accesses(body: list[ast.stmt]) -> list[Access]:
    found = []
    for stmt in body:
        for node in ast.walk(stmt):
            access = None
            if isinstance(node, ast.Attribute) and node.attr in KINDS:
                access = _chain(node.value, node.attr)
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in INDEXED_KINDS
            ):
                access = _chain(node.value.value, node.value.attr)
                if access is not None:
                    steps = (*access.steps, ("index", _compiler.index(node.slice)))
                    access = Access(access.root, steps, access.kind)
            if access is not None:
                found.append(access)
    return found


def _chain(node: ast.expr, kind: str) -> Access | None:
    steps: list[tuple[str, Any]] = []
    while True:
        if isinstance(node, ast.Attribute):
            steps.append(("attr", node.attr))
            node = node.value
        elif isinstance(node, ast.Subscript):
            steps.append(("index", _compiler.index(node.slice)))
            node = node.value
        elif isinstance(node, ast.Name):
            return Access(node.id, tuple(reversed(steps)), kind)
        else:
            return None


_SIMPLE = (
    ast.Name,
    ast.Constant,
    ast.Attribute,
    ast.UnaryOp,
    ast.BinOp,
    ast.Load,
    ast.operator,
    ast.unaryop,
)


def plain_index(node: ast.expr) -> int | Index | None:
    """A constant index, a side-effect-free expression to evaluate later, or None (any)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if not all(isinstance(n, _SIMPLE) for n in ast.walk(node)):
        return None
    names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    code = compile(ast.Expression(body=node), "<lenslab index>", "eval")
    return Index(code, names)


@dataclass(frozen=True)
class BodyCompiler:
    """How with-block bodies become code, and index expressions (``layers[i]``) get read."""

    body: Callable[[list[ast.stmt], str], CodeType | None] = plain_body
    index: Callable[[ast.expr], int | Index | None] = plain_index


_compiler = BodyCompiler()


def body_compiler() -> BodyCompiler:
    """The compiler in use (see ``set_body_compiler``)."""
    return _compiler


def set_body_compiler(compiler: BodyCompiler | None) -> BodyCompiler:
    """Compile with-block bodies with ``compiler`` from now on (None: plainly again); returns
    the one it replaces.

    Why this exists: the engine compiles some bodies itself, from source (``tracer.invoke``,
    ``model.edit()``, validated and ``.save()``-rewritten bodies). ``lenslab serve`` runs
    untrusted code, and its worker must compile those bodies with its sandbox's guards, as it
    does the main body, or they would run unguarded (server/compiler.py). Process-wide: it is
    meant for a process that runs only such code. The callables get what ``plain_body`` and
    ``plain_index`` get and may fall back to them. Blocks compiled before are forgotten, so
    no body compiled the other way runs again.
    """
    global _compiler
    previous, _compiler = _compiler, compiler or BodyCompiler()
    _blocks.clear()
    return previous


class _Binder(ast.NodeVisitor):
    """Collects the names a block binds in its own scope (not in nested functions)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.names.add(node.id)

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.names.add(node.name)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass

    def _comprehension(self, node: ast.AST) -> None:
        for child in ast.walk(node):
            if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                self.names.add(child.target.id)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_alias(self, node: ast.alias) -> None:
        self.names.add(node.asname or node.name.split(".")[0])

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)


def _assigned(body: list[ast.stmt]) -> set[str]:
    binder = _Binder()
    for stmt in body:
        binder.visit(stmt)
    return binder.names
