"""The README, the front door: its two setup commands exist, its quick start runs exactly as
written and prints what it says, and its links lead to files that exist.

Everything else the README used to hold lives in docs/, whose code tests/test_docs.py runs.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_code() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_matches_the_example_file():
    example = (ROOT / "examples" / "quickstart.py").read_text()
    body = example.split('"""', 2)[2].lstrip("\n")
    assert body == quick_start_code()


def test_quick_start_runs_and_prints_what_the_readme_says(tmp_path, capsys):
    script = tmp_path / "quickstart.py"
    script.write_text(quick_start_code())
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "layer 15 output: (1, 10, 576)" in out
    assert "next token: ' Paris'" in out
    assert "patched: ' Rome'" in out
    without = re.search(r"without MLPs: (.*)", out).group(1)
    assert without != "' Paris'"


def test_readme_names_the_two_setup_commands_that_exist():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(scripts/\w+)", setup, re.M)
    assert commands == ["scripts/start", "scripts/test"]
    for command in commands:
        assert (ROOT / command).stat().st_mode & 0o111
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_relative_link_in_the_readme_leads_to_a_file():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10 and any(link.startswith("docs/") for link in local)
    for link in local:
        assert (ROOT / link).exists(), link


def test_the_readme_stays_the_short_front_door():
    """Reference material goes to docs/, where every example runs (tests/test_docs.py)."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("```python") == 1  # the quick start, and nothing else to keep in sync
    assert len(readme.splitlines()) < 150
