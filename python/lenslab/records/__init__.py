"""Frozen, JSON-able results that render without a model (no torch, no engine imports).

Widgets draw these; a saved record re-renders in a notebook that has no model loaded.
"""

from .grid import Grid
from .module_tree import ModuleNode
from .patch import PatchOutcome, TopToken
from .selection import COMPONENT_VIEWS, Selection

__all__ = ["COMPONENT_VIEWS", "Grid", "ModuleNode", "PatchOutcome", "Selection", "TopToken"]
