"""Finding and loading checkpoints: short names, configs, tokenizers, weights, meta skeletons."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

SHORT_NAMES = {"smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}


def checkpoint_path(name: str | os.PathLike[str]) -> str:
    """A local directory (or cached hub name) for ``name``; short names are built on demand."""
    text = os.fspath(name)
    if text.lower() in SHORT_NAMES:
        from . import smollm2

        return str(smollm2.ensure_converted())
    return text


def load_config(path: str) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path)


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_model(path: str, **kwargs: Any) -> nn.Module:
    """The real model, in eval mode (dropout off), as ``from_pretrained`` builds it."""
    from transformers import AutoModelForCausalLM

    options = {k: v for k, v in kwargs.items() if v is not None}
    return AutoModelForCausalLM.from_pretrained(path, **options).eval()


def meta_model(config: Any, dtype: torch.dtype | str | None = None) -> nn.Module:
    """The module tree without weights (on the meta device): instant, for lazy loading."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        options = {"dtype": dtype} if dtype is not None else {}
        return AutoModelForCausalLM.from_config(config, **options).eval()
