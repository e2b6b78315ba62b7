"""The call sites of a Python function: their names, and the function rewritten to expose them.

``module.source`` (operations.py) names every call in a module's forward the way nnsight does,
so code written for nnsight finds the same points: the called expression's dotted name with
dots as underscores, and a counter per name, in the order the calls finish evaluating
(inner calls before the calls that contain them): ``self.c_proj(x)`` is ``self_c_proj_0``,
``torch.matmul(q, k)`` is ``torch_matmul_0``, ``x.view(...).transpose(...)`` gives
``x_view_0`` and then ``transpose_0`` (a chain that does not start at a name keeps only its
attributes; a call of anything else, ``fns[0](x)``, is ``unknown_<n>``).

nnsight 0.8 numbers differently, and its names are accepted too (``Site.nnsight08``): it also
makes each assignment a point (``h = relu(x)`` gives ``relu_0`` then ``h_0``), with calls and
assignments sharing one counter per name, so Llama's attention call, ``attention_interface_0``
above, is its ``attention_interface_1`` (the assignment that picks the function is ``_0``); its
dotted names run through subscripts (``self.layers[0](x)`` is ``self_layers_0``), and an
unnamed callee is ``call_<n>``. An assignment point is the assigned value routed through
``scope.bind`` (an identity) so it reads and edits like any call's result.

The rewritten function is the original with each call ``f(a, k=b)`` turned into
``scope.call(i, f)(a, k=b)``: evaluation order is unchanged, and ``scope.call`` hands back
``f`` itself unless a trace on this greenlet asked for site ``i``. It is compiled with the
original's file name and line numbers, so tracebacks point at the model's own source.
Decorators are applied to the twin again, since some carry behaviour (transformers'
``deprecate_kwarg`` renames arguments, ``capture_outputs`` collects hidden states); one that
fails on a function outside its class (``auto_docstring``) is left off, as nnsight leaves
them all off.

This module knows nothing of traces: it is pure ``ast`` work, cached per code object.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any

SCOPE = "_lenslab_scope_"  # the name the rewritten body calls its dispatcher by
_FACTORY = "_lenslab_rewritten_"


class NoSourceError(Exception):
    """The function has no Python source to rewrite (raised short; callers add context)."""


@dataclass(frozen=True)
class Site:
    """One point in a function's body: a call, or (nnsight 0.8's) an assignment."""

    name: str  # nnsight's documented name, e.g. "self_c_proj_0" (an assignment: 0.8's name)
    index: int  # position in the body's order of points; what the rewritten code passes
    line: int  # line in the function's file where the call starts
    nnsight08: str | None = None  # nnsight 0.8's name for this point (None: 0.8 has none)
    assignment: bool = False  # a point only nnsight 0.8 has: the value bound by ``x = ...``


@dataclass(frozen=True)
class Rewritten:
    """A function's call sites and a factory for its rewritten twin."""

    qualname: str
    filename: str
    first_line: int  # line of the function's first source line (a decorator, or ``def``)
    lines: tuple[str, ...]  # the function's source lines, as in the file
    sites: tuple[Site, ...]
    freevars: tuple[str, ...]  # closure names of the original, passed to the factory
    factory: Callable[..., FunctionType]  # factory(scope, *closure values) -> the function
    decorators: tuple[Callable[[Any], Any], ...] = ()  # the original's, innermost last

    def build(self, scope: Any, original: FunctionType) -> Callable[..., Any]:
        """The rewritten function, calling ``scope.call`` at each site; globals are shared."""
        cells = original.__closure__ or ()
        function: Callable[..., Any] = self.factory(scope, *(c.cell_contents for c in cells))
        for decorator in reversed(self.decorators):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    function = decorator(function)
            except Exception:  # e.g. auto_docstring: it looks for a class the twin is not in
                continue
        return function


_cache: dict[CodeType, Rewritten] = {}
_lock = threading.Lock()


def rewrite(function: Callable[..., Any]) -> Rewritten:
    """The call sites of ``function`` (decorators unwrapped) and its rewritten twin (cached).

    Raises:
        NoSourceError: ``function`` is not Python code with readable source.
    """
    raw = raw_function(function)
    code = raw.__code__
    hit = _cache.get(code)
    if hit is not None:
        return hit
    with _lock:
        hit = _cache.get(code)
        if hit is None:
            hit = _cache[code] = _rewrite(raw)
    return hit


def raw_function(function: Callable[..., Any]) -> FunctionType:
    """The plain Python function under decorators and bound methods; NoSourceError if none."""
    raw: Any = inspect.unwrap(getattr(function, "__func__", function))
    raw = getattr(raw, "__func__", raw)
    if not isinstance(raw, FunctionType):
        kind = type(raw).__name__
        raise NoSourceError(f"it is a {kind}, not a Python function, so it has no source")
    return raw


def _rewrite(raw: FunctionType) -> Rewritten:
    try:
        lines, first = inspect.getsourcelines(raw)
    except (OSError, TypeError) as error:
        raise NoSourceError(f"its source cannot be read ({error})") from None
    text = "".join(lines)
    dedented = textwrap.dedent(text)
    indent = len(lines[0]) - len(lines[0].lstrip()) if dedented != text else 0
    try:
        tree = ast.parse(dedented)
    except SyntaxError as error:
        raise NoSourceError(f"its source does not parse on its own ({error.msg})") from None
    function = tree.body[0] if tree.body else None
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise NoSourceError("its source is not a def statement (a lambda?)")
    ast.increment_lineno(tree, first - 1)
    if indent:
        for node in ast.walk(tree):
            if hasattr(node, "col_offset"):
                node.col_offset += indent
                if getattr(node, "end_col_offset", None) is not None:
                    node.end_col_offset += indent
    decorators = tuple(_evaluated(node, raw) for node in function.decorator_list)
    function.decorator_list = []
    # In nnsight's order: the signature's calls after the ``def`` line (defaults, evaluated
    # once, when the twin is made), the body, then the return annotation.
    namer = _SiteNamer(_first_arg(function), function.lineno)
    function.args = namer.visit(function.args)
    function.body = [namer.visit(stmt) for stmt in function.body]
    if function.returns is not None:
        function.returns = namer.visit(function.returns)
    freevars = raw.__code__.co_freevars
    params = ", ".join((SCOPE, *freevars))
    factory = ast.parse(f"def {_FACTORY}({params}):\n    pass").body[0]
    assert isinstance(factory, ast.FunctionDef)
    factory.body = [function, ast.Return(value=ast.Name(id=function.name, ctx=ast.Load()))]
    for node in ast.walk(factory):  # the factory's own nodes: at the def's line
        if node is function:
            break
        ast.copy_location(node, function)
    module = ast.Module(body=[factory], type_ignores=[])
    ast.fix_missing_locations(module)
    filename = raw.__code__.co_filename
    namespace: dict[str, Any] = {}
    # Globals are the original's own dict, so the twin sees later changes to its module.
    exec(compile(module, filename, "exec"), raw.__globals__, namespace)
    maker = namespace[_FACTORY]
    return Rewritten(
        qualname=raw.__qualname__,
        filename=filename,
        first_line=first,
        lines=tuple(line.rstrip("\n") for line in lines),
        sites=tuple(namer.sites),
        freevars=freevars,
        factory=maker,
        decorators=tuple(d for d in decorators if d is not None),
    )


def _evaluated(node: ast.expr, raw: FunctionType) -> Callable[[Any], Any] | None:
    """A decorator expression's value, in the function's module; None if it cannot be had
    there (it named something of the class body)."""
    try:
        code = compile(ast.Expression(body=node), raw.__code__.co_filename, "eval")
        value = eval(code, raw.__globals__)
    except Exception:
        return None
    return value if callable(value) else None


def _first_arg(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    args = [*function.args.posonlyargs, *function.args.args]
    return args[0].arg if args else None


class _SiteNamer(ast.NodeTransformer):
    """Names each call (children first, as nnsight counts them) and routes it through SCOPE;
    numbers assignments too, for nnsight 0.8's names, and routes their values through
    ``SCOPE.bind``. Values are visited before targets, in the order they run."""

    def __init__(self, first_arg: str | None, def_line: int) -> None:
        self.sites: list[Site] = []
        self._counts: dict[str, int] = {}  # the documented names: calls only
        self._counts08: dict[str, int] = {}  # nnsight 0.8's: calls and assignments, shared
        self._first_arg = first_arg
        self._def_line = def_line

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        bare_super = isinstance(func, ast.Name) and func.id == "super" and not node.args
        # nnsight 0.8 leaves zero-argument super() alone; it numbers the signature's calls.
        name08 = None if bare_super else _numbered(self._counts08, _dotted(func)[0] or "call")
        if node.lineno <= self._def_line:  # on the def line: the documented form leaves out
            return node
        name = _numbered(self._counts, _called_name(func))
        index = len(self.sites)
        self.sites.append(Site(name, index, node.lineno, name08))
        if bare_super and self._first_arg is not None:
            # Zero-argument super() reads its frame; called through the dispatcher it would
            # read the wrong one, so name its arguments (``__class__`` is a closure value).
            node.args = [
                ast.Name(id="__class__", ctx=ast.Load()),
                ast.Name(id=self._first_arg, ctx=ast.Load()),
            ]
        node.func = _dispatch(index, func, node)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        node.value = self.visit(node.value)
        node.targets = [self.visit(target) for target in node.targets]
        if len(node.targets) == 1:  # ``a = b = v`` binds one value to two names: no point
            node.value = self._bound(node.targets[0], node.value, node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self._bound(node.target, self.visit(node.value), node)
        node.target = self.visit(node.target)
        return node

    def _bound(self, target: ast.expr, value: ast.expr, node: ast.stmt) -> ast.expr:
        """``value`` as an assignment point named after ``target`` (``a, b = x, y``: each)."""
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
            both = [*target.elts, *value.elts]
            if len(target.elts) == len(value.elts) and not any(
                isinstance(e, ast.Starred) for e in both
            ):
                value.elts = [self._bound(t, v, node) for t, v in zip(target.elts, value.elts)]
            return value
        base, rooted = _dotted(target)
        if not rooted:  # ``f()[0] = v``, ``a, *b = v``: nothing to name it by
            return value
        name = _numbered(self._counts08, base)
        index = len(self.sites)
        self.sites.append(Site(name, index, node.lineno, name, assignment=True))
        bind = ast.Attribute(value=ast.Name(id=SCOPE, ctx=ast.Load()), attr="bind", ctx=ast.Load())
        call = ast.Call(func=_dispatch(index, bind, node), args=[value], keywords=[])
        return ast.copy_location(call, node)


def _numbered(counts: dict[str, int], base: str) -> str:
    count = counts.get(base, 0)
    counts[base] = count + 1
    return f"{base}_{count}"


def _dispatch(index: int, func: ast.expr, node: ast.AST) -> ast.Call:
    """``SCOPE.call(index, func)``, placed at ``node``."""
    dispatch = ast.Call(
        func=ast.Attribute(value=ast.Name(id=SCOPE, ctx=ast.Load()), attr="call", ctx=ast.Load()),
        args=[ast.Constant(value=index), func],
        keywords=[],
    )
    return ast.copy_location(dispatch, node)


def _called_name(func: ast.expr) -> str:
    """The documented name's base: the attribute chain, up to the first non-attribute."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        parts: list[str] = []
        current: ast.expr = func
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if isinstance(current, ast.Name):
            parts.append(current.id)
        return "_".join(reversed(parts))
    return "unknown"


def _dotted(expr: ast.expr) -> tuple[str, bool]:
    """nnsight 0.8's base: the chain through attributes and subscripts (``x[i].y``: ``x_y``),
    and whether it starts at a name."""
    parts: list[str] = []
    while True:
        if isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        elif isinstance(expr, ast.Subscript):
            expr = expr.value
        elif isinstance(expr, ast.Name):
            parts.append(expr.id)
            return "_".join(reversed(parts)), True
        else:
            return "_".join(reversed(parts)), False


def reachable(sites: tuple[Site, ...]) -> dict[str, Site]:
    """Every name a point answers to: the documented names of the calls first, then nnsight
    0.8's names that do not clash with one (0.8's ``attention_interface_0``, the assignment,
    is shadowed by the documented name of the call)."""
    names = {site.name: site for site in sites if not site.assignment}
    for site in sites:
        if site.nnsight08 is not None:
            names.setdefault(site.nnsight08, site)
    return names


def render(rewritten: Rewritten, title: str) -> str:
    """The function's source with each line's points named in a left column: calls by their
    documented names (nnsight 0.8's after it, where it differs), then 0.8's assignments."""
    names = reachable(rewritten.sites)
    by_line: dict[int, list[str]] = {}
    for site in rewritten.sites:
        if site.assignment:
            if names.get(site.name) is site:
                by_line.setdefault(site.line, []).append(f"{site.name} (0.8)")
        elif site.nnsight08 not in (None, site.name) and names.get(site.nnsight08) is site:
            by_line.setdefault(site.line, []).append(f"{site.name} (0.8: {site.nnsight08})")
        else:
            by_line.setdefault(site.line, []).append(site.name)
    width = max((len(label) for labels in by_line.values() for label in labels), default=0)
    out = [f"{title}  ({rewritten.qualname}, {rewritten.filename}:{rewritten.first_line})"]
    for offset, text in enumerate(rewritten.lines):
        line = rewritten.first_line + offset
        labels = by_line.get(line, [])
        head = labels[0] if labels else ""
        arrow = "->" if labels else "  "
        out.append(f" {head:<{width}} {arrow} {line:4d}  {text}")
        for label in labels[1:]:
            out.append(f" {label:<{width}} ->    +  {' ' * (len(text) - len(text.lstrip()))}...")
    if any(site.assignment for site in rewritten.sites):
        out.append(
            " (0.8): nnsight 0.8's names, accepted too; it also numbers assignments, with calls "
            "and assignments sharing a counter per name."
        )
    return "\n".join(out)


def render_site(rewritten: Rewritten, site: Site, title: str, context: int = 4) -> str:
    """A few lines around ``site``, its line marked."""
    at = site.line - rewritten.first_line
    lo, hi = max(0, at - context), min(len(rewritten.lines), at + context + 1)
    out = [f"{title}  ({rewritten.filename}:{site.line})"]
    for offset in range(lo, hi):
        mark = "-->" if offset == at else "   "
        out.append(f" {mark} {rewritten.first_line + offset:4d}  {rewritten.lines[offset]}")
    return "\n".join(out)
