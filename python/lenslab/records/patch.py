"""One activation patch and its effect: top-k next tokens for clean, corrupted and patched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TopToken:
    token: str
    id: int
    prob: float

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "id": self.id, "prob": self.prob}


@dataclass(frozen=True)
class PatchOutcome:
    """Clean ``component`` activation at (``layer``, ``position``) copied into the corrupted run.

    ``score``: 1 = the clean logit difference fully restored, 0 = no effect (as in
    ``activation_patching``).
    """

    component: str
    layer: int
    position: int
    token: str
    score: float
    clean: list[TopToken]
    corrupted: list[TopToken]
    patched: list[TopToken]

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "layer": self.layer,
            "position": self.position,
            "token": self.token,
            "score": self.score,
            "clean": [t.to_json() for t in self.clean],
            "corrupted": [t.to_json() for t in self.corrupted],
            "patched": [t.to_json() for t in self.patched],
        }
