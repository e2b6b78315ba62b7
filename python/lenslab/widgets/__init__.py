"""Notebook widgets (anywidget): module tree, layer picker, live plots, steering, patching.

Each is one line from a wrapped model or a result, and shows a static HTML copy of its state
where no widget front end runs (an exported notebook).
"""

from .heatmap import Heatmap
from .layer_picker import LayerPicker
from .live import StepPlot, activation_norms, generation_plot, lens_heatmap, live_logit_lens
from .module_tree import ModuleTree, scan_tree
from .patching_grid import PatchingGrid
from .steering_panel import SteeringPanel

__all__ = [
    "Heatmap",
    "LayerPicker",
    "ModuleTree",
    "PatchingGrid",
    "SteeringPanel",
    "StepPlot",
    "activation_norms",
    "generation_plot",
    "lens_heatmap",
    "live_logit_lens",
    "scan_tree",
]
