"""Bodies that only keep references to traced values, so the forward need not pause for them.

A read normally pauses the forward at its module until the body asks for something later,
because the body may edit the value, or compute on it before a later module changes it in
place. A body that does neither (it binds values to names, appends them to lists, indexes and
``.save()``s them) ends up holding the very same objects if the forward first runs to its end
and the reads are then served from the values the trace kept. A pause costs tens of
microseconds on a real model (the forward has flushed the CPU caches meanwhile), so such a body
gets one pause instead of one per read: saving all 30 layers of SmolLM2 costs what saving one
does.

The check is syntactic and errs on the side of pausing: a call other than ``.save()``,
``list.append`` and a few builtins, an edit, any use of a read value, or a read the source
scan could not resolve, and the body runs the usual way.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .kinds import INDEXED_KINDS, KINDS

_BUILTINS = frozenset({"range", "len"})  # neither iterates nor indexes what it is given

VALUE, PLAIN = "value", "plain"  # an expression holds a traced value / holds none


@dataclass(frozen=True)
class Passive:
    """What must hold where the block runs for its static check to stand."""

    envoys: frozenset[str]  # names the body walks module paths from: envoys of the model
    lists: frozenset[str]  # names it appends to without binding them: lists
    builtins: frozenset[str]  # builtins it calls: not shadowed

    def holds(self, lookup: Callable[[str], Any], is_envoy: Callable[[Any], bool]) -> bool:
        """Whether the names, as bound where the block runs (``lookup``), are what they seem."""
        for name in self.envoys:  # loops, not all(...): this runs on every trace
            if not is_envoy(lookup(name)):
                return False
        for name in self.lists:
            if type(lookup(name)) is not list:
                return False
        for name in self.builtins:
            value = lookup(name)
            if value is not None and value is not getattr(builtins, name):
                return False
        return True


def passive(body: list[ast.stmt]) -> Passive | None:
    """The conditions under which ``body`` only keeps references; None if it may do more."""
    scan = _Scan()
    if not all(scan.statement(stmt) for stmt in body):
        return None
    bound = scan.bound | scan.fresh_lists
    if scan.loaded & (scan.values | scan.lists) or scan.envoys & bound or scan.lists & scan.bound:
        return None  # a read value used, a list read back, a path or a list bound elsewhere
    return Passive(
        frozenset(scan.envoys), frozenset(scan.lists - scan.fresh_lists), frozenset(scan.builtins)
    )


class _Scan:
    def __init__(self) -> None:
        self.values: set[str] = set()  # names bound to traced values
        self.bound: set[str] = set()  # names the body binds, other than to []
        self.fresh_lists: set[str] = set()  # names the body binds to []
        self.lists: set[str] = set()  # names appended to
        self.loaded: set[str] = set()  # names read, other than as append targets
        self.envoys: set[str] = set()
        self.builtins: set[str] = set()

    # -- statements -------------------------------------------------------------------------

    def statement(self, stmt: ast.stmt) -> bool:
        if isinstance(stmt, ast.Pass):
            return True
        if isinstance(stmt, ast.Assign):
            if isinstance(stmt.value, ast.List) and not stmt.value.elts:
                names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                self.fresh_lists.update(names)
                return len(names) == len(stmt.targets)
            kind = self.expr(stmt.value)
            if kind is None or not all(self.target(t) for t in stmt.targets):
                return False
            unpacks = not all(isinstance(t, ast.Name) for t in stmt.targets)
            if unpacks and kind == PLAIN and not isinstance(stmt.value, (ast.Tuple, ast.List)):
                return False  # iterating an unknown object could read module values
            if kind == VALUE:
                self.values.update(_names(stmt.targets))
            return True
        if isinstance(stmt, ast.Expr):
            call = stmt.value
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "append"
                and isinstance(call.func.value, ast.Name)
                and len(call.args) == 1
                and not call.keywords
            ):
                self.lists.add(call.func.value.id)
                return self.expr(call.args[0]) is not None
            return self.expr(call) is not None
        if isinstance(stmt, ast.For):
            return (
                isinstance(stmt.target, ast.Name)
                and self.target(stmt.target)
                and self.counting(stmt.iter)
                and all(self.statement(s) for s in (*stmt.body, *stmt.orelse))
            )
        return False

    def target(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            self.bound.add(node.id)
            return True
        if isinstance(node, (ast.Tuple, ast.List)):
            return all(self.target(e) for e in node.elts)
        return False

    # -- expressions: VALUE, PLAIN or None (anything else) -----------------------------------

    def expr(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant):
            return PLAIN
        if isinstance(node, ast.Name):
            self.loaded.add(node.id)
            return PLAIN
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            operands = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.operand]
            return PLAIN if all(self.expr(o) == PLAIN for o in operands) else None
        if isinstance(node, (ast.List, ast.Tuple)):
            kinds = [self.expr(e) for e in node.elts]
            if None in kinds:
                return None
            return VALUE if VALUE in kinds else PLAIN
        if isinstance(node, ast.ListComp):
            for loop in node.generators:
                if loop.is_async or loop.ifs or not isinstance(loop.target, ast.Name):
                    return None
                if not (self.target(loop.target) and self.counting(loop.iter)):
                    return None
            return self.expr(node.elt)
        return None

    def attribute(self, node: ast.Attribute) -> str | None:
        if node.attr in KINDS and self.module_path(node.value):
            return VALUE
        inner = self.expr(node.value)
        if inner == VALUE:  # a field or view of a value (``.logits``, ``.shape``, ``.T``)
            return VALUE
        if inner == PLAIN and self.module_path(node):
            return PLAIN  # ``model.model.layers``: a module path, or a plain attribute of one
        return None

    def subscript(self, node: ast.Subscript) -> str | None:
        value = node.value
        if isinstance(value, ast.Attribute) and value.attr in INDEXED_KINDS:
            if self.module_path(value.value) and self.expr(node.slice) == PLAIN:
                return VALUE
            return None
        inner = self.expr(value)
        if inner == VALUE:  # ``h[:, -1]``, ``out[0]``: constant indices give views
            return VALUE if _constant_index(node.slice) else None
        if inner == PLAIN and self.module_path(node):
            return PLAIN  # ``model.model.layers[i]``
        return None

    def call(self, node: ast.Call) -> str | None:
        func = node.func
        if node.keywords:
            return None
        if isinstance(func, ast.Attribute) and func.attr == "save" and not node.args:
            return VALUE if self.expr(func.value) == VALUE else None
        if isinstance(func, ast.Name) and func.id in _BUILTINS:
            self.builtins.add(func.id)
            return PLAIN if all(self.expr(a) == PLAIN for a in node.args) else None
        return None

    def counting(self, node: ast.expr) -> bool:
        """``range(...)``: the one loop the check lets through (iterating an unknown object,
        such as ``model.layers_output``, could read module values)."""
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and self.expr(node) == PLAIN
        )

    def module_path(self, node: ast.expr) -> bool:
        """``model.model.layers[i]``-like: a name, then attributes and plain indices."""
        sources = 0
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            if isinstance(node, ast.Attribute) and node.attr in KINDS | INDEXED_KINDS:
                return False
            if isinstance(node, ast.Attribute) and node.attr == "source":
                sources += 1
                if sources > 1:  # a recursive .source waits for its call (operations.py)
                    return False
            if isinstance(node, ast.Subscript) and self.expr(node.slice) != PLAIN:
                return False
            node = node.value
        if isinstance(node, ast.Name):
            self.envoys.add(node.id)
            return True
        return False


def _constant_index(node: ast.expr) -> bool:
    """Ints, slices of ints and ``...``/``None``: basic indexing, which returns a view."""
    if isinstance(node, ast.Tuple):
        return all(_constant_index(e) for e in node.elts)
    if isinstance(node, ast.Slice):
        parts = (node.lower, node.upper, node.step)
        return all(part is None or _constant_index(part) for part in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _constant_index(node.operand)
    return isinstance(node, ast.Constant) and (
        node.value is None or node.value is Ellipsis or type(node.value) is int
    )


def _names(targets: list[ast.expr]) -> set[str]:
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
