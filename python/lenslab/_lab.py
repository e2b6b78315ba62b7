"""What the JupyterLab sidebar needs from torch and the engine, handed to ``lenslab.comms``.

``register_sidebar()`` runs when lenslab is imported, and only does something inside a Jupyter
kernel that IPython already runs: it registers the ``"lenslab"`` comm target. Nothing in torch
changes, and nothing runs until the sidebar asks.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional

from .engine import observers
from .engine.operations import call_site_lines
from .errors import LensError
from .models.module import NNsight

if TYPE_CHECKING:  # comms is imported only inside a kernel, by register_sidebar
    from .comms.protocol import ModelInfo, ModuleNode, SavedValue

SCAN_PROMPT = "Hello world"
SPARK_POINTS = 48
HEAT_ROWS = 16


def register_sidebar() -> None:
    """Serve the lab sidebar from the running IPython kernel, if there is one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    from . import __version__, comms

    comms.register(
        shell,
        TorchInspector(),
        version=__version__,
        add_trace_listener=observers.add_trace_listener,
        saved_of=saved_of,
        origin_of=origin_of,
    )


def saved_of(tracer: Any) -> list[Any] | None:
    """What a closed trace saved; ``None`` for scans (fake tensors, e.g. the sidebar's own)."""
    if getattr(tracer, "_scan", False):
        return None
    return list(getattr(tracer, "saved", []))


_OWN = ("lenslab.widgets", "lenslab.tools")


def origin_of(_tracer: Any) -> str:
    """Which lenslab widget or tool ran the trace now closing ("" for the user's own code).

    Read from the call stack at close: the outermost frame in ``lenslab.widgets`` names its
    widget's class (or the live-plot helper), else the outermost public ``lenslab.tools``
    function (``logit_lens``).
    """
    widget = tool = ""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(_OWN):
            owner = frame.f_locals.get("self")
            name = frame.f_code.co_name
            if module.startswith("lenslab.widgets"):
                if owner is not None and type(owner).__module__.startswith("lenslab.widgets"):
                    widget = type(owner).__name__
                elif not name.startswith(("_", "<")):
                    widget = name
            elif not name.startswith(("_", "<")):
                tool = name
        frame = frame.f_back
    return widget or tool


def path_form(text: str) -> str:
    """A module path in one form for matching: ``model.layers[5]`` -> ``model.layers.5``."""
    return re.sub(r"\[\s*(-?\d+)\s*\]", r".\1", text.strip().lower())


def path_matches(display: str, query: str) -> bool:
    """Whether ``query`` (dotted ``layers.5`` or bracket ``layers[5]``) occurs in ``display``;
    a query ending in an index (``layers[5]``, ``layers.5``) does not match ``layers.50``."""
    needle, hay = path_form(query), path_form(display)
    if not needle:
        return False
    if re.search(r"\.\d+$", needle):
        return f"{needle}." in f"{hay}."
    return needle in hay


class TorchInspector:
    """Describes lenslab models and saved torch values for the sidebar (read-only)."""

    def __init__(self) -> None:
        self._shapes: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def is_model(self, value: Any) -> bool:
        return isinstance(value, NNsight)

    def is_value(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor)

    def describe(self, name: str, model: Any) -> ModelInfo:
        module = model._module
        count = 0
        device, dtype = "none", "none"
        for index, parameter in enumerate(module.parameters()):
            count += parameter.numel()
            if index == 0:
                device, dtype = str(parameter.device), str(parameter.dtype).removeprefix("torch.")
        if device == "meta" and not getattr(model, "dispatched", True):
            device = "meta (loads on first trace)"
        return {
            "name": name,
            "cls": type(module).__name__,
            "wrapper": type(model).__name__,
            "params": count,
            "device": device,
            "dtype": dtype,
        }

    def children(self, model: Any, path: list[str], *, scan: bool) -> list[ModuleNode]:
        module = model._module
        for key in path:
            child = module._modules.get(key)
            if child is None:
                raise LookupError(f"{_display(path)} is not in the module tree any more")
            module = child
        shapes = self._scan(model) if scan else self._shapes.get(model._module, {})
        nodes = [
            _node(key, [*path, key], child, shapes)
            for key, child in module._modules.items()
            if child is not None
        ]
        # After the submodules, the calls inside this module's forward (``.source``'s names).
        nodes += [
            {"key": name, "path": [*path, "source", name], "cls": line, "children": 0,
             "calls": 0, "shape": None, "kind": "call"}
            for name, line in _call_sites(module).items()
        ]
        return nodes

    def find(self, model: Any, query: str, limit: int) -> list[ModuleNode]:
        shapes = self._shapes.get(model._module, {})
        found: list[ModuleNode] = []
        for dotted, module in model._module.named_modules():
            if not dotted:
                continue
            path = dotted.split(".")
            if path_matches(_display(path), query):
                found.append(_node(path[-1], path, module, shapes))
                if len(found) >= limit:
                    break
        return found

    def summarize(self, name: str, value: Any) -> SavedValue:
        summary: SavedValue = {
            "name": name,
            "kind": type(value).__name__,
            "shape": None,
            "dtype": None,
            "min": None,
            "mean": None,
            "max": None,
            "spark": None,
            "heat": None,
            "origin": "",
        }
        if not isinstance(value, torch.Tensor):
            if isinstance(value, int | float | bool | str):
                summary["kind"] = f"{type(value).__name__} = {str(value)[:40]}"
            return summary
        summary.update(
            kind="Tensor",
            shape=list(value.shape),
            dtype=str(value.dtype).removeprefix("torch."),
        )
        if value.is_meta or value.numel() == 0 or value.is_complex() or _is_fake(value):
            return summary
        with torch.no_grad():
            data = value.detach().to("cpu", torch.float32)
            finite = data[torch.isfinite(data)]
            if finite.numel():
                summary.update(
                    min=_number(finite.min()),
                    mean=_number(finite.mean()),
                    max=_number(finite.max()),
                )
            data = torch.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
            if data.dim() >= 2:
                grid = data[(0,) * (data.dim() - 2)]
                if grid.shape[0] == 1:
                    summary["spark"] = _profile(grid[0])
                else:
                    summary["heat"] = _grid(grid)
            elif data.dim() == 1:
                summary["spark"] = _profile(data)
        return summary

    def _scan(self, model: Any) -> dict[str, str]:
        """Output shapes by module name, from one scan on a dummy prompt (cached per model)."""
        with self._lock:
            cached = self._shapes.get(model._module)
            if cached is not None:
                return cached
            shapes: dict[str, str] = {}
            if getattr(model, "tokenizer", None) is not None:
                try:
                    with model.scan(SCAN_PROMPT) as tracer:
                        cache = tracer.cache()
                    shapes = {name: _shape_text(entry.output) for name, entry in cache.items()}
                except Exception:  # shapes are a bonus: the tree works without them
                    shapes = {}
            self._shapes[model._module] = shapes
            return shapes


def _node(key: str, path: list[str], module: torch.nn.Module, shapes: dict[str, str]) -> ModuleNode:
    return {
        "key": key,
        "path": path,
        "cls": type(module).__name__,
        "children": sum(1 for child in module._modules.values() if child is not None),
        "calls": len(_call_sites(module)),
        "shape": shapes.get(_display(path)),
        "kind": "module",
    }


def _call_sites(module: torch.nn.Module) -> dict[str, str]:
    """``.source``'s call sites of ``module`` with their code; none where it has no source."""
    try:
        return call_site_lines(module)
    except LensError:  # a compiled or C forward: the module is still shown, without calls
        return {}


def _display(path: list[str]) -> str:
    """``["model", "layers", "5"]`` -> ``model.model.layers[5]`` (the engine's module names)."""
    return "model" + "".join(f"[{key}]" if key.isdigit() else f".{key}" for key in path)


def _shape_text(value: Any, depth: int = 0) -> str:
    if isinstance(value, torch.Tensor):
        return "[" + ", ".join(str(size) for size in value.shape) + "]"
    if value is None:
        return "None"
    if depth < 2 and isinstance(value, tuple | list):
        inner = ", ".join(_shape_text(item, depth + 1) for item in value[:3])
        more = ", ..." if len(value) > 3 else ""
        return f"({inner}{more})"
    if depth < 1 and hasattr(value, "keys") and hasattr(value, "__getitem__"):
        keys = list(value.keys())
        inner = ", ".join(f"{key}: {_shape_text(value[key], depth + 1)}" for key in keys[:2])
        more = ", ..." if len(keys) > 2 else ""
        return f"{type(value).__name__}({inner}{more})"
    return type(value).__name__


def _is_fake(value: torch.Tensor) -> bool:
    return type(value).__name__ == "FakeTensor"


def _number(value: torch.Tensor) -> float | None:
    number = float(value)
    return float(f"{number:.4g}") if math.isfinite(number) else None


def _profile(row: torch.Tensor) -> list[float]:
    if row.numel() > SPARK_POINTS:
        row = functional.adaptive_avg_pool1d(row[None, None], SPARK_POINTS)[0, 0]
    return [float(f"{x:.4g}") for x in row.tolist()]


def _grid(grid: torch.Tensor) -> list[list[float]]:
    rows = min(grid.shape[0], HEAT_ROWS)
    cols = min(grid.shape[1], SPARK_POINTS)
    pooled = functional.adaptive_avg_pool2d(grid[None, None], (rows, cols))[0, 0]
    return [[float(f"{x:.4g}") for x in row] for row in pooled.tolist()]
