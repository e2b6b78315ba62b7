"""The README's quick start runs exactly as written and prints what the README says."""

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


def local_readme() -> str:
    """The README without its remote-execution section (tests/remote runs that one on a server)."""
    readme = (ROOT / "README.md").read_text()
    before, _, rest = readme.partition("## Remote execution")
    return before + ("\n## " + rest.split("\n## ", 1)[1] if "\n## " in rest else "")


def test_every_python_snippet_in_the_readme_runs_in_order(tmp_path, capsys):
    """The API section's snippets build on the quick start's names (model, prompt)."""
    readme = local_readme()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(snippets) >= 5
    script = tmp_path / "snippets.py"
    script.write_text("\n".join(snippets))
    names = runpy.run_path(str(script), run_name="__main__")
    assert names["early_grad"].abs().max() == 0 and names["late_grad"].abs().max() > 0
    assert (
        names["ids"].shape[1]
        > names["model"].tokenizer("The Eiffel Tower is in", return_tensors="pt").input_ids.shape[1]
    )
    assert names["out"].shape[0] == 1
    # The offload example: most layers on disk, the same prediction as in memory.
    assert list(names["big"]._model.hf_device_map.values()).count("disk") >= 29
    assert names["big"].tokenizer.decode(names["offloaded_logits"][0, -1].argmax()) == " Paris"
    # nnsight's other forms: one cache entry per generated token, hook=True ran the edit, and
    # the standalone backward block saw a gradient.
    assert len(names["steps"]["model.lm_head"]) == 3
    assert names["zeroed"].abs().max() == 0 and names["plain"].abs().max() > 0
    assert names["state_grad"].shape == names["state"].shape and names["state_grad"].any()
