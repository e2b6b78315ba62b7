"""The README's remote-execution section is true: its code runs against a real server, with the
host and key from the environment variables it names, and prints what it says."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from lenslab.remote import CONFIG

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    return README.read_text().split("## Remote execution", 1)[1].split("\n## ", 1)[0]


def test_the_host_command_names_real_options():
    from lenslab.server.cli import main

    command = re.search(r"```bash\n(lenslab serve .*?)\n```", section(), re.S).group(1)
    for option in re.findall(r"--[\w-]+", command):
        assert option in {"--model", "--host", "--port", "--api-keys"}
    try:
        main(["serve", "--help"])
    except SystemExit as done:
        assert done.code == 0


def test_the_usage_code_runs_against_a_server(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LENSLAB_HOST", server.url)
    monkeypatch.setenv("LENSLAB_API_KEY", server.key)
    code = re.search(r"```python\n(.*?)```", section(), re.S).group(1)
    script = tmp_path / "remote_readme.py"
    script.write_text(code)
    with CONFIG.use(host=None, api_key=None, status=False):
        names = runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [" Paris", " Rome"]
    assert names["hidden"].shape == (1, 10, 576)
    assert not names["model"].dispatched
