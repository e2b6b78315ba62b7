"""docs/source.md runs as written: its python blocks in order, in one fresh namespace.

That is the docs site's convention for every page. Run two ways: as one file (lenslab reads
the with-blocks' source) and block by block from strings (no source to read), since a page
runner may do either.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "source.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_page_runs_as_one_file(tmp_path, capsys):
    script = tmp_path / "source_page.py"
    script.write_text("\n".join(blocks()))
    names = runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "attention_interface_0" in out and "self_o_proj_0" in out
    assert "last token attends most to position" in out
    assert "3 steps read" in out
    assert "Did you mean self_o_proj_0" in out
    assert names["pattern"].shape[-1] == names["pattern"].shape[-2]
    assert not names["ablated"].equal(names["clean"])


def test_the_page_runs_block_by_block_without_source(capsys):
    namespace: dict = {"__name__": "__main__"}
    for index, block in enumerate(blocks()):
        exec(compile(block, f"<docs/source.md block {index}>", "exec"), namespace)
    assert "3 steps read" in capsys.readouterr().out
