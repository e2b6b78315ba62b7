"""A model's module tree with what a scan found: class, parameter count, output shape."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModuleNode:
    """One module: ``path`` is how you write it (``model.model.layers[5].mlp``).

    ``output`` describes what the module returned in the scan (``"(1, 4, 576)"``), or is
    ``None`` when the forward never called it (a ``ModuleList``, say).
    """

    path: str
    name: str
    kind: str
    parameters: int
    output: str | None
    children: tuple[ModuleNode, ...] = field(default_factory=tuple)

    @property
    def expression(self) -> str:
        """What to write in a trace to read this module's output."""
        return f"{self.path}.output"

    def walk(self) -> Iterator[ModuleNode]:
        """This node, then every descendant, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, path: str) -> ModuleNode | None:
        return next((node for node in self.walk() if node.path == path), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "parameters": self.parameters,
            "output": self.output,
            "children": [child.to_json() for child in self.children],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModuleNode:
        return cls(
            data["path"],
            data["name"],
            data["kind"],
            int(data["parameters"]),
            data["output"],
            tuple(cls.from_json(child) for child in data["children"]),
        )
