"""``model.session()``: several traces as one unit of work.

Locally every trace already runs when its block ends and its values are real tensors, so a
session only groups traces; values from one trace can be used in the next. (It exists so that
code written for remote sessions, which send all their traces in one request, runs as is.)
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class Session:
    """``with model.session() as session:`` around several ``model.trace(...)`` blocks."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return False
