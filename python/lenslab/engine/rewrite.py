"""``.save()`` on any object in a block: ``[].save()``, ``dict().save()``, ``n.item().save()``.

nnsight gives every object a ``save`` by writing into ``object`` from C. lenslab changes no
builtin type; it rewrites the block's code instead. Each ``X.save()`` whose receiver may lack a
``save`` of its own becomes a call of ``saving.save_any(X)``, which calls ``X.save()`` where X has
one (tensors, model outputs, user classes) and marks X as saved otherwise. The rewritten code
keeps the user's file name and line numbers, so tracebacks and pdb show the user's lines.

A block whose every ``.save()`` is on a traced value (``model.h[0].output.save()``, or a name
bound to one) needs none of this and keeps running as the interpreter compiled it; the check is
syntactic, made once per block, and leans towards rewriting (always correct, just less direct).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator

from .kinds import INDEXED_KINDS, KINDS
from .saving import SAVE_NAME

# What a traced tensor (or model output) turns into that is still a tensor, so has .save().
_TENSOR_FIELDS = frozenset(
    {"logits", "loss", "last_hidden_state", "T", "mT", "H", "mH", "grad", "data", "real", "imag"}
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TENSOR_METHODS = _words(
    """abs add argmax argmin bfloat16 clamp clip clone contiguous cos cpu cuda cumsum detach
    detach_ diff div double exp expand expand_as flatten flip float gather half index_select
    int log log_softmax logsumexp long masked_fill matmul mean mul neg norm permute pow relu
    repeat requires_grad_ reshape roll sigmoid sign sin softmax sqrt square squeeze std sub sum
    t tanh to transpose type_as unsqueeze var view view_as where"""
)
_TORCH_FUNCTIONS = _words(
    """cat stack zeros ones zeros_like ones_like full full_like empty tensor as_tensor arange
    randn rand randn_like softmax log_softmax matmul einsum where concat concatenate"""
)

_Position = tuple[int, int]
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)


def _position(node: ast.AST) -> _Position:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _own_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of ``body`` outside nested functions, lambdas and classes."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _is_save(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "save"
        and not node.args
        and not node.keywords
    )


class _Traced:
    """Which expressions of a body surely hold a traced value (a tensor or model output)."""

    def __init__(self, body: list[ast.stmt]) -> None:
        # Each name's bindings: where each ends, and the value (None: not a plain assignment).
        bindings: dict[str, list[tuple[_Position, ast.expr | None]]] = {}
        plain: set[int] = set()  # the Name targets of plain assignments
        for node in _own_nodes(body):
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                end = (node.end_lineno or 0, node.end_col_offset or 0)
                for target in node.targets:
                    plain.add(id(target))
                    bindings.setdefault(target.id, []).append((end, node.value))  # type: ignore[attr-defined]
        for node in _own_nodes(body):
            name = None
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                name = None if id(node) in plain else node.id
            elif isinstance(node, _SCOPES):
                name = node.name
            elif isinstance(node, ast.alias):
                name = node.asname or node.name.split(".")[0]
            if name is not None:
                bindings.setdefault(name, []).append(((0, 0), None))
        self._first = {name: min(pos for pos, _ in found) for name, found in bindings.items()}
        self._rebound = frozenset(bindings)
        # The largest consistent set: assume every plainly assigned name holds a traced value,
        # then drop those with a binding that does not, until none changes (so that both
        # ``h = h.save()`` and ``b = a.clone()`` after ``a = model.x.output`` stay traced).
        self.names = {n for n, found in bindings.items() if all(v is not None for _, v in found)}
        changed = True
        while changed:
            changed = False
            for name in list(self.names):
                if not all(self.holds(value) for _, value in bindings[name]):  # type: ignore[arg-type]
                    self.names.discard(name)
                    changed = True

    def holds(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            first = self._first.get(node.id)
            return node.id in self.names and first is not None and first < _position(node)
        if isinstance(node, ast.Attribute):
            if node.attr in KINDS:
                return True
            return node.attr in _TENSOR_FIELDS and self.holds(node.value)
        if isinstance(node, ast.Subscript):
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr in INDEXED_KINDS:
                return True
            return self.holds(value)
        if isinstance(node, ast.Call):
            func = node.func
            if not isinstance(func, ast.Attribute):
                return False
            if _is_save(node) or func.attr in _TENSOR_METHODS:
                return self.holds(func.value)
            return (
                func.attr in _TORCH_FUNCTIONS
                and isinstance(func.value, ast.Name)
                and func.value.id == "torch"
                and "torch" not in self._rebound
            )
        if isinstance(node, ast.BinOp):
            return self.holds(node.left) or self.holds(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.holds(node.operand)
        return False


class _Rewriter(ast.NodeTransformer):
    def __init__(self, traced: _Traced) -> None:
        self.traced = traced
        self.count = 0

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if _is_save(node) and not self.traced.holds(node.func.value):  # type: ignore[attr-defined]
            self.count += 1
            helper = ast.copy_location(ast.Name(SAVE_NAME, ast.Load()), node.func)
            return ast.copy_location(ast.Call(helper, [node.func.value], []), node)  # type: ignore[attr-defined]
        return node

    def _keep(self, node: ast.AST) -> ast.AST:
        return node  # nested scopes may run after the block, where the helper is gone

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _keep


def rewrite_saves(body: list[ast.stmt]) -> list[ast.stmt] | None:
    """``body`` with ``X.save()`` calls routed through the save helper; None if none needs it."""
    if not any(_is_save(node) for node in _own_nodes(body)):
        return None
    rewriter = _Rewriter(_Traced(body))
    rewritten = [rewriter.visit(stmt) for stmt in copy.deepcopy(body)]
    return rewritten if rewriter.count else None
