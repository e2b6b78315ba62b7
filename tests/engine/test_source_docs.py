"""docs/source.md's blocks also run one by one from strings, as a notebook user's exec would.

tests/test_docs.py runs the page as a file (lenslab reads each with-block's source); here no
block has source to read, which takes the engine's other path for every ``.source`` read.
"""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "source.md"


def test_the_page_runs_block_by_block_without_source(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    namespace: dict = {"__name__": "__main__"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"<docs/source.md block {index}>", "exec"), namespace)
    assert "3 steps read" in capsys.readouterr().out
