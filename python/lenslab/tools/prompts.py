"""What every tool reports about its prompt's tokens (the headline numbers depend on it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError


@dataclass(frozen=True)
class Tokens:
    """A prompt as the model saw it: token ids, their text, and whether a BOS was prepended."""

    ids: torch.Tensor  # (1, seq)
    text: list[str]
    bos: bool

    @property
    def count(self) -> int:
        return len(self.text)

    def describe(self) -> str:
        """E.g. "10 tokens, no BOS": printed with every result, as it moves headline numbers."""
        return f"{self.count} tokens, {'BOS first' if self.bos else 'no BOS'}"


def tokens_of(model: Any, prompt: str) -> Tokens:
    encoded = model.tokenizer(prompt, return_tensors="pt")
    ids = encoded["input_ids"]
    bos_id = model.tokenizer.bos_token_id
    bos = bos_id is not None and int(ids[0, 0]) == bos_id
    return Tokens(ids, [model.tokenizer.decode(int(i)) for i in ids[0]], bos)


def token_id(model: Any, token: str | int) -> int:
    """The id of a single-token string such as ``" Paris"`` (or an id, unchanged)."""
    if isinstance(token, int):
        return token
    ids = model.tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise InputError(
            f"{token!r} is {len(ids)} tokens for this tokenizer; pass a single-token string "
            f"(with its leading space, e.g. ' Paris') or a token id."
        )
    return int(ids[0])
