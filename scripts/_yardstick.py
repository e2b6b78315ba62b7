"""What the nnsight yardsticks share: nnsight's files read at run time, the package named
``nnsight`` that re-exports lenslab, and the tiny random GPT-2 that stands in for the hub's.

scripts/nnsight-yardstick (nnsight's tests) and scripts/nnsight-docs-yardstick (nnsight's
documentation pages) import it; nothing of nnsight's is ever copied into this project.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIRROR = Path("/work/.mirror/ndif-team+nnsight/repo")
HUB_NAMES = ("openai-community/gpt2", "gpt2")

ALIAS_INIT = '''
"""nnsight, as lenslab: the yardsticks' alias package (written by scripts/_yardstick.py)."""

import os as _os

import lenslab as _lenslab
from lenslab import *  # noqa: F403
from lenslab import LanguageModel as _LanguageModel

from . import intervention, util  # noqa: F401  (nnsight.intervention... without an import)

_HUB = {name: _os.environ["YARDSTICK_GPT2"] for name in %(hub)r}


class LanguageModel(_LanguageModel):
    """lenslab's LanguageModel; hub GPT-2 names load the tiny random local checkpoint."""

    def __init__(self, model, *args, **kwargs):
        if isinstance(model, str):
            model = _HUB.get(model, model)
        super().__init__(model, *args, **kwargs)


def __getattr__(name):
    return getattr(_lenslab, name)
'''

ALIAS_UTIL = '''
"""nnsight.util's WrapperModule (an identity module to attach in edits), for the yardsticks."""

import torch


class WrapperModule(torch.nn.Module):
    def forward(self, *args, **kwargs):
        if len(args) == 1:
            return args[0]
        return args, kwargs
'''

ALIAS_INTERLEAVER = '''
"""nnsight's missed-value error, as lenslab's: the forward passed the module before the line
(an edit out of order), or never ran it (a submodule of a skipped module)."""

from lenslab import ModuleNotCalledError, OutOfOrderError


class Mediator:
    MissedProviderError = (OutOfOrderError, ModuleNotCalledError)
    OutOfOrderError = OutOfOrderError
'''


def run_with_torch(script: str, argv: list[str]) -> None:
    """Re-runs ``script`` under the checkout's venv when this interpreter has no torch."""
    venv = REPO / ".venv" / "bin" / "python"
    if importlib.util.find_spec("torch") is None and venv.exists():
        os.execv(venv, [str(venv), script, *argv])


def _git_dir(source: Path) -> Path:
    return source / ".git" if (source / ".git").exists() else source


def read_nnsight_file(source: Path, name: str) -> str:
    """A file of an nnsight checkout: a work tree's, or a bare repository's at HEAD."""
    if (source / name).is_file():
        return (source / name).read_text()
    return subprocess.run(
        ["git", "--git-dir", str(_git_dir(source)), "show", f"HEAD:{name}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def list_nnsight_files(source: Path, folder: str) -> list[str]:
    """The paths under ``folder`` of an nnsight checkout, relative to its root, sorted."""
    if (source / folder).is_dir():
        files = (source / folder).rglob("*")
        return sorted(str(p.relative_to(source)) for p in files if p.is_file())
    listing = subprocess.run(
        ["git", "--git-dir", str(_git_dir(source)), "ls-tree", "-r", "--name-only", "HEAD", folder],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(listing.split())


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def write_alias(alias: Path) -> None:
    """The package named ``nnsight`` (under ``alias``) that re-exports lenslab."""
    write(alias / "nnsight" / "__init__.py", ALIAS_INIT % {"hub": HUB_NAMES})
    write(alias / "nnsight" / "util.py", ALIAS_UTIL)
    write(alias / "nnsight" / "intervention" / "__init__.py", "from . import interleaver\n")
    write(alias / "nnsight" / "intervention" / "interleaver.py", ALIAS_INTERLEAVER)


def alias_env(alias: Path, gpt2: Path) -> dict[str, str]:
    """The environment that runs code under the alias, offline, with the tiny GPT-2."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(alias), str(REPO / "python")]),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        YARDSTICK_GPT2=str(gpt2),
    )
    return env


def build_tiny_gpt2(target: Path) -> None:
    """A random GPT-2 with GPT-2's 12 layers and width 768 and SmolLM2's tokenizer, saved."""
    print(f"[lenslab] building the tiny random GPT-2 in {target}", file=sys.stderr)
    sys.path.insert(0, str(REPO / "python"))
    import torch
    import transformers as tf

    from lenslab.models import smollm2

    tokenizer = tf.AutoTokenizer.from_pretrained(smollm2.ensure_converted())
    torch.manual_seed(0)
    config = tf.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=768,
        n_layer=12,
        n_head=12,
        n_inner=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = tf.GPT2LMHeadModel(config).eval()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
