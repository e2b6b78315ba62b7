"""The value names a block's source can read off a module path, shared by the source scans.

Its own module so that source.py (which reads blocks) and passive.py / rewrite.py (which it
calls) all take the names from below instead of from each other.
"""

from __future__ import annotations

KINDS = frozenset({"output", "input", "inputs"})
# Indexed per-layer values a model wrapper may offer (``model.layers_output[5]``): the chain
# ends in ``name[index]``; the wrapper's ``_watch_targets`` says which module they read.
INDEXED_KINDS = frozenset(
    {"layers_output", "layers_input", "attentions_output", "mlps_output", "attention_probabilities"}
)
