"""The documentation site is true: every page's examples run, and the site builds without a warning.

Conventions for pages (docs/contributing.md says the same for writers):

- A page's ```python blocks run in order, in one fresh namespace per page, from a script file
  whose line numbers are the page's own, so a failure points at the Markdown line. A page must
  be self-contained: its first block loads what the later ones use (the real SmolLM2:
  ``model = LanguageModel("smollm2")``).
- A block meant not to run uses another fence: ```bash, ```text, or ```py-norun.
- The remote execution page runs against a real server, in tests/remote/test_docs_remote.py.
- Some pages' results are checked below (CHECKS), against what their text says.
- An API reference page (docs/reference/) renders docstrings with its ``::: lenslab.X`` lines;
  the docstrings' examples run as doctests (output compared) in the namespace of that page's
  python block, which shows the reader the names the examples use.

``mkdocs build --strict`` builds the whole site into a temporary folder: a broken link, a page
missing from the navigation or a docstring mkdocstrings cannot read fails it.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
SERVED = {"remote.md"}  # run against a real server: tests/remote/test_docs_remote.py


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """Each ```python block of ``page``, with the number of its first line in the file."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def page_script(page: Path) -> str:
    """The page's python blocks as one script, each block on its own lines of the page."""
    lines: list[str] = []
    for first, code in python_blocks(page):
        lines += [""] * (first - 1 - len(lines))
        lines += code.splitlines()
    return "\n".join(lines) + "\n"


def run_page(page: Path, tmp_path: Path) -> dict[str, Any]:
    """Runs the page's python blocks in order, in a fresh namespace, as a file would run."""
    script = tmp_path / page.name.replace(".md", "_md.py")
    script.write_text(page_script(page))
    return runpy.run_path(str(script), run_name="__main__")


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def pages_with_code() -> list[str]:
    return [str(p.relative_to(DOCS)) for p in pages() if python_blocks(p)]


def reference_pages() -> list[str]:
    return [str(p.relative_to(DOCS)) for p in sorted((DOCS / "reference").glob("*.md"))]


def rendered_objects(page: Path) -> list[tuple[str, Any]]:
    """What a reference page's ``::: lenslab.X`` lines render: the object, or a module and the
    public names it lists in ``__all__``."""
    found = []
    for path in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M):
        parent, _, name = path.rpartition(".")
        try:
            obj = importlib.import_module(path)
        except ModuleNotFoundError:
            obj = getattr(importlib.import_module(parent), name)
        found.append((path, obj))
        for member in getattr(obj, "__all__", []) if isinstance(obj, type(os)) else []:
            found.append((f"{path}.{member}", getattr(obj, member)))
    return found


def docstring_examples(page: Path) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    for path, obj in rendered_objects(page):
        if isinstance(obj, (type, type(os))) or callable(obj):
            for test in finder.find(obj, path, module=False):
                tests.setdefault(f"{test.filename}:{test.lineno}", test)
    return list(tests.values())


# What the pages say their code prints or binds, checked after the page ran. ``out`` is the
# page's printed output; ground truth for the values themselves is in the engine's tests.


def check_getting_started(names: dict[str, Any], out: str) -> None:
    assert "layer 15 output: (1, 10, 576)" in out
    assert "next token: ' Paris'" in out
    assert "patched: ' Rome'" in out
    assert re.search(r"without MLPs: (.*)", out).group(1) != "' Paris'"


def check_models(names: dict[str, Any], out: str) -> None:
    assert out.splitlines()[:2] == ["False", "True"]
    # The offload example: most layers on disk, the same prediction as in memory.
    assert list(names["big"]._model.hf_device_map.values()).count("disk") >= 29
    assert names["big"].tokenizer.decode(names["offloaded_logits"][0, -1].argmax()) == " Paris"
    assert "cpu" in out.splitlines()


def check_tracing(names: dict[str, Any], out: str) -> None:
    lines = out.splitlines()
    assert lines[:4] == ["3 ' Paris'", "LensWarning", "(1, 10, 576)", "0.0"]
    assert lines[4] == "' Rome'"
    assert names["early"].shape == (1, 10, 576)
    assert names["result"].logits.shape[:2] == (1, 10)


def check_invokes(names: dict[str, Any], out: str) -> None:
    assert names["out"].shape[0] == 1
    assert names["every"].shape == (3, names["model"].config.vocab_size)
    assert out.strip() == str(tuple(names["every"].shape))


def check_generation(names: dict[str, Any], out: str) -> None:
    prompt = names["model"].tokenizer("The Eiffel Tower is in", return_tensors="pt").input_ids
    assert names["ids"].shape[1] > prompt.shape[1]


def check_gradients(names: dict[str, Any], out: str) -> None:
    assert names["early_grad"].abs().max() == 0 and names["late_grad"].abs().max() > 0


def check_standardized(names: dict[str, Any], out: str) -> None:
    assert out.strip() == "30 576 (1, 10, 576)"
    assert names["attn"].shape == (1, 10, 576) and names["probs"].shape[0] == 1


def check_nnsight(names: dict[str, Any], out: str) -> None:
    lines = out.splitlines()
    assert lines[0] == "3 ['model.lm_head']" and lines[1] == "['model', 'model.0', 'model.1']"
    assert lines[3:] == ["0.0 True", "(1, 10, 576)", "True", "' Rome'", "(1, 10)"]
    alone = names["model"].tokenizer(names["prompt"], return_tensors="pt")["input_ids"]
    assert torch.equal(names["ids"], alone)
    # One cache entry per generated token, hook=True ran the edit, and the standalone backward
    # block saw a gradient.
    assert len(names["steps"]["model.lm_head"]) == 3
    assert names["zeroed"].abs().max() == 0 and names["plain"].abs().max() > 0
    assert names["state_grad"].shape == names["state"].shape and names["state_grad"].any()


def check_toolkit(names: dict[str, Any], out: str) -> None:
    # The page's printout is what the code prints (numbers and all).
    printout = re.search(r"```text\n(.*?)```", (DOCS / "toolkit.md").read_text(), re.S).group(1)
    for line in printout.splitlines():
        assert line in out.splitlines(), line
    # Getting the data out: the rows are the result's own scores, cell by cell.
    scores = names["patching"].scores["resid"]
    assert f"{scores.numel()} ['probs', 'token_ids']" in out.splitlines()
    for row in names["rows"]:
        expected = scores[row["layer"], names["patching"].positions.index(row["position"])]
        assert row["score"] == pytest.approx(float(expected))
    baseline, steered = names["steered"].log_prob(names["model"], " great")
    assert steered > baseline  # the warm vector makes " great" likelier


def check_widgets(names: dict[str, Any], out: str) -> None:
    assert out.splitlines()[0] == "model.model.layers[5].mlp.output"
    mine = names["mine"].array
    assert mine.shape == (30, 10) and not (mine != mine).any()  # every row set, no NaN
    assert names["outcome"].patched[0].token in out
    panel = names["panel"]
    assert panel.coefficient == 5.0 and panel.high >= 5.0  # the slider widened by code
    # Getting the data out: one row per cell, each the value set_row put there.
    rows = names["rows"]
    assert len(rows) == mine.size and f"{mine.size} .svg" in out.splitlines()
    for row in rows:
        assert row["value"] == pytest.approx(float(mine[row["row"], row["col"]]))
    assert names["picture"].read_text().lstrip().startswith("<svg")


def check_errors(names: dict[str, Any], out: str) -> None:
    lines = out.splitlines()
    assert lines[0] == "NotTracingError" and lines[-1] == "OutOfOrderError"
    assert "0-29" in lines[1] or "range" in lines[1]


def check_source(names: dict[str, Any], out: str) -> None:
    assert "attention_interface_0" in out and "self_o_proj_0" in out
    assert "last token attends most to position" in out
    assert "3 steps read" in out
    assert "Did you mean self_o_proj_0" in out
    assert "attention_interface_0 (0.8: attention_interface_1)" in out
    assert "0.8 name reads the call: (1, " in out
    assert "30 calls of decoder_layer_0" in out
    assert names["pattern"].shape[-1] == names["pattern"].shape[-2]
    assert not names["ablated"].equal(names["clean"])


CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "getting-started.md": check_getting_started,
    "models.md": check_models,
    "tracing.md": check_tracing,
    "invokes.md": check_invokes,
    "generation.md": check_generation,
    "gradients.md": check_gradients,
    "standardized.md": check_standardized,
    "nnsight.md": check_nnsight,
    "toolkit.md": check_toolkit,
    "widgets.md": check_widgets,
    "errors.md": check_errors,
    "source.md": check_source,
}


@pytest.mark.parametrize(
    "name", [p for p in pages_with_code() if p not in SERVED and p not in reference_pages()]
)
def test_page_runs_and_says_what_it_prints(name, tmp_path, capsys):
    names = run_page(DOCS / name, tmp_path)
    out = capsys.readouterr().out
    CHECKS[name](names, out)


@pytest.mark.parametrize("name", reference_pages())
def test_reference_page_docstring_examples_run(name, tmp_path):
    page = DOCS / name
    tests = docstring_examples(page)
    if not tests:
        assert not python_blocks(page), f"{name}: a set-up block, but no examples to run"
        return
    names = run_page(page, tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in tests:
        test.globs = dict(names)
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_page_with_code_is_self_contained_and_checked():
    """Each page starts from lenslab itself; none leans on another page's names."""
    for name in pages_with_code():
        first = python_blocks(DOCS / name)[0][1]
        assert "from lenslab import" in first, name
        checked = name in CHECKS or name in SERVED or name in reference_pages()
        assert checked, f"{name}: add what its code shows to CHECKS"


def test_every_fence_says_whether_it_runs():
    """A block in a fence of its own (```py, ```pycon) would silently go untested."""
    for page in pages():
        for fence in re.findall(r"^```(.*)$", page.read_text(), re.M):
            assert fence in {"python", "py-norun", "bash", "text", ""}, (page.name, fence)


def test_the_quick_start_is_the_example_file_everywhere():
    example = (ROOT / "examples" / "quickstart.py").read_text()
    body = example.split('"""', 2)[2].lstrip("\n")
    section = (DOCS / "getting-started.md").read_text().split("## Quick start", 1)[1]
    assert FENCE.search(section).group(1) == body


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "reference" / "models" / "index.html").is_file()
    assert (tmp_path / "tutorials" / "01_walkthrough" / "index.html").is_file()
    assert not (ROOT / ".cache" / "mkdocs-jupyter").exists()  # the build wrote nothing here


def test_the_extras_the_docs_name_exist_and_are_pinned_for_our_runs():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    texts = [(ROOT / "README.md").read_text()] + [p.read_text() for p in pages()]
    named = {extra for text in texts for extra in re.findall(r"lenslab\[(\w+)\]", text)}
    assert {"lab", "server"} <= named and named <= set(extras)
    pinned = {
        re.split(r"[=<>\[]", line)[0].lower()
        for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for extra in ("lab", "server", "docs", "test"):
        for requirement in extras[extra]:
            assert re.split(r"[=<>\[ ]", requirement)[0].lower() in pinned, requirement
