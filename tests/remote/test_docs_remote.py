"""The remote execution page (docs/remote.md) is true: its code runs against a real server, with
the host and key from the environment variables it names, and prints what it says."""

from __future__ import annotations

import re

from lenslab.remote import CONFIG

from ..test_docs import DOCS, python_blocks, run_page

PAGE = DOCS / "remote.md"


def test_every_option_the_page_names_is_a_real_one(capsys):
    from lenslab.server.cli import main

    try:
        main(["serve", "--help"])
    except SystemExit as done:
        assert done.code == 0
    real = set(re.findall(r"--[\w-]+", capsys.readouterr().out))
    text = PAGE.read_text()
    command = re.search(r"```bash\n(lenslab serve .*?)\n```", text, re.S).group(1)
    named = set(re.findall(r"--[\w-]+", command)) | set(re.findall(r"`(--[\w-]+)", text))
    assert {"--model", "--api-keys", "--time-limit"} <= named <= real


def test_the_page_names_the_environment_variables_it_is_run_with():
    text = PAGE.read_text()
    assert "LENSLAB_HOST=" in text and "LENSLAB_API_KEY=" in text
    assert len(python_blocks(PAGE)) == 1


def test_the_page_code_runs_against_a_server(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LENSLAB_HOST", server.url)
    monkeypatch.setenv("LENSLAB_API_KEY", server.key)
    with CONFIG.use(host=None, api_key=None, status=False):
        names = run_page(PAGE, tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [" Paris", " Rome"]
    assert names["hidden"].shape == (1, 10, 576)
    assert not names["model"].dispatched
