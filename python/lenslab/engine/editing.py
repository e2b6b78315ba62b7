"""``model.edit()``: interventions that apply to every later trace of a model.

The block's body is read from source and kept, with the names it could see, instead of
running; every later trace runs it first, on the whole batch, before its own code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import TraceStateError
from . import frames, rerun, source

if TYPE_CHECKING:
    from .source import Block


@dataclass(frozen=True)
class Edit:
    """A kept edit block: its compiled body and the namespace it was written in."""

    block: Block
    namespace: dict[str, Any]


class EditBlock:
    """``with model.edit() as edited:`` — the block's code becomes part of ``edited``."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._edit: Edit | None = None
        self._unskip: Callable[[], None] | None = None

    def __enter__(self) -> Any:
        frame = sys._getframe(1)
        block = source.block_at(frame)
        if block is None or block.body is None:
            raise TraceStateError(
                "model.edit() keeps its block's code to rerun in later traces, so it needs the "
                "source (a file or notebook cell, not a string run with exec), and no "
                "return/yield inside the block."
            )
        self._edit = Edit(block, rerun.namespace_of(frame))
        self._unskip = frames.skip_body(frame, self._target, block.body_line)
        return self._target

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self._unskip is not None:
            self._unskip()
            self._unskip = None
        if error_type is frames.SkipBody and self._edit is not None:
            # The body may name the edited model by its ``as`` name, bound only by the skip.
            caller = frames.namespace_of(sys._getframe(1))
            self._edit.namespace.update(
                (name, value) for name, value in caller.items() if value is self._target
            )
            self._target._edits.append(self._edit)
            return True
        return False
