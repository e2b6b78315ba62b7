"""Interpretability workflows as one call each; every result keeps its tensors and plots itself."""

from .attribution import AttributionResult, attribution_patching
from .lens import LogitLens, logit_lens
from .patching import PatchingResult, activation_patching
from .steering import SteeringResult, steer, steering_vector

__all__ = [
    "AttributionResult",
    "LogitLens",
    "PatchingResult",
    "SteeringResult",
    "activation_patching",
    "attribution_patching",
    "logit_lens",
    "steer",
    "steering_vector",
]
