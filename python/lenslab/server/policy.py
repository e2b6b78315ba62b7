"""What remote code may do, checked before any of it runs (RestrictedPython plus our rules).

RestrictedPython compiles the block: names and attributes starting with ``_`` (so
``__subclasses__``, ``__globals__``, ``__class__``...), frame and generator internals
(``gi_frame``, ``f_back``...), ``exec`` / ``eval`` and star imports are refused, and every
attribute read, item access, iteration and write in the block's code goes through the guards in
``guards.py``. The same ``RemotePolicy`` compiles every body the engine runs on its own
(invokes, ``edit()``, session traces: see ``compiler.py``). On top of that, ``check`` refuses:

- imports other than ``ALLOWED_MODULES`` (``import os`` fails here, not at run time);
- any name that is neither bound by the block, sent by the client, nor one of ``BUILTINS``
  (so ``open``, ``getattr``, ``globals``, ``type``, ``breakpoint``... are refused);
- with the hosted model's allow-lists (``allowlist.static_refusals``), any attribute that
  objects a block can reach have but no allow-list allows (``backend_tokenizer``,
  ``from_json_file``, ``set_submodule``...);
- module attributes that reach storage, files, processes or global state (``torch.save``...);
- assigning any attribute other than a module's ``output`` / ``input`` / ``inputs``;
- class statements.
"""

from __future__ import annotations

import ast
import copy
import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import CodeType

from RestrictedPython import compile_restricted_exec
from RestrictedPython.transformer import (
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from ..remote.protocol import RUN_NAME

ALLOWED_MODULES = frozenset(
    {
        "math",
        "torch",
        "torch.nn",
        "torch.nn.functional",
        "torch.linalg",
        "torch.fft",
        "torch.special",
    }
)

BUILTINS = frozenset(
    {
        "abs", "all", "any", "bool", "callable", "chr", "complex", "dict", "divmod", "enumerate",
        "filter", "float", "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "iter",
        "len", "list", "map", "max", "min", "next", "oct", "ord", "pow", "print", "range", "repr",
        "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
        "True", "False", "None", "Ellipsis", "NotImplemented",
        "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError",
        "KeyError", "LookupError", "NameError", "NotImplementedError", "RuntimeError",
        "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
    }
)  # fmt: skip

UNGUARDED_ENV = "LENSLAB_TEST_UNGUARDED_JOBS"


def unguarded() -> bool:
    """Test-only: run blocks without the Python sandbox, to prove the OS layer holds alone.

    Set by the tests' own server (``LENSLAB_TEST_UNGUARDED_JOBS="yes, for a test"``); the
    server and its workers print a warning when it is on.
    """
    return os.environ.get(UNGUARDED_ENV) == "yes, for a test"


MODULE_DENIED = frozenset(
    {
        "save", "load", "from_file", "compile", "manual_seed", "seed", "initial_seed",
        "use_deterministic_algorithms", "set_rng_state", "get_rng_state", "from_dlpack",
        "export", "vmap", "cond", "library", "classes", "ops", "hub", "jit", "Generator",
        "set_grad_enabled", "autocast", "is_storage", "typename", "data", "numpy", "storage",
        "untyped_storage", "register_buffer", "register_parameter", "register_module",
        "load_state_dict", "state_dict", "format", "format_map", "mro", "apply",
    }
)  # fmt: skip


def module_attribute_problem(name: str) -> str | None:
    """Why remote code may not use ``torch.name`` (or any allowed module's), None if it may."""
    if (
        name in MODULE_DENIED
        or name.startswith(("set_", "register_", "_"))
        or "storage" in name.lower()
    ):
        return f'"{name}" of torch is not available in remote code'
    return None


STORABLE_ATTRIBUTES = frozenset({"output", "input", "inputs"})
MAX_SOURCE = 1_000_000


class RemoteCodeRejected(ValueError):
    """The block's code breaks the sandbox rules; ``problems`` lists each, with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def attribute_problem(name: str) -> str | None:
    """Why remote code may not use ``.name`` on any object (None: it may, on some)."""
    if name.startswith("_"):
        return f'the attribute ".{name}" is not available in remote code (it is private)'
    return None


class RemotePolicy(RestrictingNodeTransformer):
    """RestrictedPython's rules plus lenslab's (see the module docstring)."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.ctx, ast.Store) and node.attr not in STORABLE_ATTRIBUTES:
            self.error(
                node,
                f'assigning ".{node.attr}" is not allowed in remote code: only a module\'s '
                ".output, .input and .inputs can be assigned.",
            )
        return super().visit_Attribute(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        """``x.output[:, -1] += v`` as ``x.output[:, -1] = iadd(x.output[:, -1], v)``, guarded."""
        if not isinstance(node.target, (ast.Attribute, ast.Subscript)):
            return super().visit_AugAssign(node)
        load = copy.deepcopy(node.target)
        load.ctx = ast.Load()
        value = ast.Call(
            func=ast.Name("_inplacevar_", ast.Load()),
            args=[
                ast.Constant(IOPERATOR_TO_STR[type(node.op)]),
                self.visit(load),
                self.visit(node.value),
            ],
            keywords=[],
        )
        assign = ast.Assign(targets=[self.visit(node.target)], value=value)
        copy_locations(assign, node)
        return assign

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class statements are not allowed in remote code.")
        return node

    def check_import_names(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        if isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] if not node.level else ["." * node.level]
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full not in ALLOWED_MODULES and module_attribute_problem(alias.name):
                    modules.append(full)
        else:
            modules = [alias.name for alias in node.names]
        for module in modules:
            if module not in ALLOWED_MODULES:
                self.error(
                    node,
                    f'importing "{module}" is not allowed in remote code (allowed: '
                    f"{', '.join(sorted(ALLOWED_MODULES))}).",
                )
        return super().check_import_names(node)


@dataclass(frozen=True)
class Checked:
    """A block that passed every rule: its restricted code and its text as compiled."""

    code: CodeType
    text: str  # the source, with blank lines so each line keeps its number


def check(
    source: str,
    filename: str,
    line: int,
    provided: Iterable[str],
    modules: Iterable[str] = (),
    refused: frozenset[str] | None = None,
) -> Checked:
    """Compile ``source`` (a with statement starting at ``line``) under the sandbox rules.

    ``provided`` are the names the client sends values for, ``modules`` those that are modules,
    ``refused`` the attribute names that exist on objects a block can reach but that the hosted
    model's allow-lists do not allow (None: not known yet; the worker checks again with them
    before running, and its run-time guard refuses the rest).

    Raises:
        RemoteCodeRejected: every rule it breaks, each with its line.
    """
    if len(source) > MAX_SOURCE:
        raise RemoteCodeRejected(
            [f"Line {line}: the block is {len(source)} characters, over {MAX_SOURCE}."]
        )
    text = "\n" * max(line - 1, 0) + source
    try:
        tree = ast.parse(text, filename)
        problems = _structure(tree) + _free_names(tree, frozenset(provided))
        problems += _module_attributes(tree, frozenset(modules))
        if refused:
            problems += _refused_attributes(tree, refused)
        result = compile_restricted_exec(tree, filename, policy=RemotePolicy)
    except SyntaxError as error:
        raise RemoteCodeRejected([f"Line {error.lineno or line}: {error.msg}"]) from None
    except (RecursionError, MemoryError):
        raise RemoteCodeRejected(
            [f"Line {line}: the block is nested too deeply or too long to compile."]
        ) from None
    except ValueError as error:  # a null byte, a lone surrogate...
        raise RemoteCodeRejected([f"Line {line}: the block cannot be compiled: {error}."]) from None
    problems += [p for p in result.errors if p not in problems]
    if problems or result.code is None:
        raise RemoteCodeRejected(sorted(set(problems), key=_line_of) or ["cannot compile"])
    return Checked(result.code, text)


def _structure(tree: ast.Module) -> list[str]:
    """The block must be exactly ``with lenslab_remote_block() [as name]:`` and its body."""
    body = tree.body
    ok = (
        len(body) == 1
        and isinstance(body[0], ast.With)
        and len(body[0].items) == 1
        and isinstance(body[0].items[0].context_expr, ast.Call)
        and isinstance(body[0].items[0].context_expr.func, ast.Name)
        and body[0].items[0].context_expr.func.id == RUN_NAME
        and not body[0].items[0].context_expr.args
        and not body[0].items[0].context_expr.keywords
        and isinstance(body[0].items[0].optional_vars, (ast.Name, type(None)))
    )
    return [] if ok else [f"Line 1: the job is not one with-block opened by {RUN_NAME}()."]


def _free_names(tree: ast.Module, provided: frozenset[str]) -> list[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    known = bound | provided | BUILTINS | {RUN_NAME}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in known:
            problems.append(
                f'Line {node.lineno}: the name "{node.id}" is not available in remote code (it '
                "is not a value sent from your session, and not a builtin the server allows)."
            )
    return problems


def _module_attributes(tree: ast.Module, modules: frozenset[str]) -> list[str]:
    """``torch.save`` and the like, wherever a module's name is used directly."""
    aliases = set(modules)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            aliases.update(
                a.asname or a.name
                for a in node.names
                if f"{node.module}.{a.name}" in ALLOWED_MODULES
            )
    problems = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and not node.attr.startswith("_")
        ):
            problem = module_attribute_problem(node.attr)
            if problem is not None:
                problems.append(f"Line {node.lineno}: {problem}.")
    return problems


def _refused_attributes(tree: ast.Module, refused: frozenset[str]) -> list[str]:
    """Attributes that no object a block can reach allows (see ``allowlist.py``)."""
    return [
        f'Line {node.lineno}: ".{node.attr}" is not available in remote code: no object a '
        "block can reach allows it (tensor ops, the documented lenslab API, model.tokenizer's "
        "encode/decode and config values are allowed)."
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in refused
    ]


def explain(rejected: RemoteCodeRejected, source: str, filename: str, line: int) -> str:
    """Each broken rule with the user's own line number and code."""
    lines = ("\n" * max(line - 1, 0) + source).splitlines()
    out = [f"the block in {filename} was rejected before running:"]
    for problem in rejected.problems:
        rest = problem.partition(":")[2]
        number = _line_of(problem)
        code = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        shown = f"line {number}" + (f" `{code}`" if code else "")
        out.append(f"  {shown}: {rest.strip()}")
    return "\n".join(out)


def _line_of(problem: str) -> int:
    head = problem.split(":", 1)[0]
    digits = "".join(ch for ch in head if ch.isdigit())
    return int(digits) if digits else 0
