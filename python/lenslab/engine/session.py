"""``model.session()``: several traces as one unit of work.

Locally every trace already runs when its block ends and its values are real tensors, so a
session only groups traces; values from one trace can be used in the next. (It exists so that
code written for remote sessions, which send all their traces in one request, runs as is.)
Like a trace's body, a session's body may call ``.save()`` on any object (see rerun.py).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from . import frames, rerun, source


class Session:
    """``with model.session() as session:`` around several ``model.trace(...)`` blocks."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._rerun: rerun.Rerun | None = None

    def __enter__(self) -> Session:
        frame = sys._getframe(1)
        block = source.block_at(frame)
        if rerun.wanted(frame, block):
            self._rerun = rerun.Rerun(frame, block, self)  # type: ignore[arg-type]
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        body, self._rerun = self._rerun, None
        if body is None:
            return False
        body.restore_tracing()
        if error_type is not frames.SkipBody:
            return False
        try:
            body.run()
        except BaseException as failure:
            if isinstance(failure.__context__, frames.SkipBody):  # how the body was skipped
                failure.__context__ = None
            raise failure.with_traceback(rerun.from_the_body(failure.__traceback__))  # noqa: B904
        return True
