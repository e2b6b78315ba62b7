"""Turning what users pass to a language model's trace into one left-padded batch.

Accepted per trace or invoke: a string, a list of strings, token ids (tensor, list, or list of
lists), a tokenizer output (dict / BatchEncoding), or keywords only (``input_ids=...,
attention_mask=...``). Left padding keeps every prompt's last token at position -1; position
ids are derived from the attention mask so a padded prompt computes what it computes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError, MissingTokenizerError

_INPUT_HELP = (
    "Pass a string, a list of strings, token ids (tensor or list), a tokenizer output, or "
    "input_ids=... (with attention_mask=...) as keywords."
)


@dataclass
class TokenInputs:
    """One invoke's tokens and the other keyword arguments for the model's forward."""

    input_ids: torch.Tensor  # (batch, seq), long
    attention_mask: torch.Tensor  # (batch, seq)
    extra: dict[str, Any] = field(default_factory=dict)
    padded: bool | None = None  # whether any row has padding (None: look at the mask)

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def has_padding(self) -> bool:
        if self.padded is None:
            self.padded = bool((self.attention_mask == 0).any())
        return self.padded


@dataclass
class TextInputs:
    """One invoke's prompts, tokenized later: all invokes' prompts go in one tokenizer call."""

    texts: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.texts)


def tokenize(
    tokenizer: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    vocab: Callable[[], int | None] | None = None,
) -> TokenInputs | TextInputs:
    """Normalize one invoke's inputs (see the module docstring for what is accepted).

    Token ids the user gives are checked against ``vocab()`` (the model's embedding rows) here,
    before any hook is set: past it, the forward would fail deep inside the embedding with a
    bare IndexError. Text needs no check (the model's own tokenizer made its ids), so a trace
    of text pays nothing for it.
    """
    if len(args) > 1:
        raise InputError(
            f"got {len(args)} positional inputs; give one (e.g. a list of prompts). {_INPUT_HELP}"
        )
    extra = dict(kwargs)
    data = args[0] if args else None
    padded: bool | None = None
    if data is None:
        if "input_ids" not in extra:
            raise InputError(f"no inputs given. {_INPUT_HELP}")
        ids, mask = extra.pop("input_ids"), extra.pop("attention_mask", None)
    elif isinstance(data, str) or _is_str_list(data):
        if tokenizer is None:
            raise MissingTokenizerError(
                "text inputs need a tokenizer, and this model was wrapped without one: pass "
                "LanguageModel(hf_model, tokenizer=tok), or give token ids instead of text."
            )
        texts = [data] if isinstance(data, str) else list(data)
        if "" not in texts:  # an empty one may have no tokens: see below, at its own line
            return TextInputs(texts, extra)
        encoded = tokenizer(data, return_tensors="pt", padding=True, padding_side="left")
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
    elif isinstance(data, Mapping):
        if "input_ids" not in data:
            raise InputError(f"the input mapping has no 'input_ids' (keys: {list(data)}).")
        rest = {k: v for k, v in data.items() if k not in ("input_ids", "attention_mask")}
        ids, mask = data["input_ids"], data.get("attention_mask")
        extra = {**rest, **extra}
    else:
        ids, mask = data, extra.pop("attention_mask", None)
    ids = _as_ids(ids)
    size = vocab() if vocab is not None else None
    if size is not None:
        _check_vocab(ids, size)
    if mask is None:
        mask, padded = torch.ones_like(ids), False
    else:
        mask = _as_mask(mask)
    if ids.shape[-1] == 0:
        raise InputError(f"the input has no tokens (an empty prompt?). {_INPUT_HELP}")
    if mask.shape != ids.shape:
        raise InputError(
            f"attention_mask has shape {list(mask.shape)} but input_ids has {list(ids.shape)}."
        )
    return TokenInputs(ids, mask, extra, padded)


def _is_str_list(data: Any) -> bool:
    return isinstance(data, (list, tuple)) and bool(data) and all(isinstance(s, str) for s in data)


def _as_ids(value: Any, what: str = "input_ids") -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, (str, bytes)):
        raise InputError(
            f"{what} is the string {value!r}: token ids are integers. Pass text as the prompt "
            "itself (model.trace('text')), or ids as a list of ints or a tensor."
        )
    elif isinstance(value, Sequence) and value:
        rows = _id_rows(value, what)
        lengths = {len(row) for row in rows}
        if len(lengths) != 1:
            raise InputError(
                f"{what} rows have different lengths {sorted(lengths)}; pad them and pass an "
                "attention_mask, or give each prompt its own tracer.invoke(...)."
            )
        tensor = torch.tensor(rows)
    else:
        raise InputError(f"cannot use a {type(value).__name__} as {what}. {_INPUT_HELP}")
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2 or tensor.is_floating_point():
        raise InputError(
            f"{what} must be integer token ids of shape (seq,) or (batch, seq), got "
            f"{tensor.dtype} of shape {list(tensor.shape)}."
        )
    return tensor.long()


def _id_rows(value: Sequence[Any], what: str) -> list[list[int]]:
    """A list of ints, or a list of lists of ints, as rows; else an InputError naming the
    first item that is neither (nested junk would otherwise fail inside torch.tensor)."""
    flat = not isinstance(value[0], Sequence) or isinstance(value[0], (str, bytes))
    rows = [value] if flat else value
    for r, row in enumerate(rows):
        where = what if flat else f"{what}[{r}]"
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise InputError(
                f"{where} is {row!r} (type {type(row).__name__}): token ids are a list of ints "
                f"(one prompt) or a list of such lists (a batch). {_INPUT_HELP}"
            )
        for c, item in enumerate(row):
            if not isinstance(item, int) or isinstance(item, bool):
                raise InputError(
                    f"{where}[{c}] is {item!r} (type {type(item).__name__}): token ids are "
                    f"ints, a list of them per prompt. {_INPUT_HELP}"
                )
    return [list(row) for row in rows]


def _check_vocab(ids: torch.Tensor, vocab: int) -> None:
    """Every id lies in ``0 .. vocab - 1`` (one reduction: this runs on traces given ids)."""
    if ids.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(ids))
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise InputError(
            f"token id {bad} is outside this model's vocabulary: ids must lie in 0..{vocab - 1} "
            f"(vocab size {vocab}, the rows of its input embedding). Use ids from this model's "
            "tokenizer (model.tokenizer('text').input_ids), or pass the text itself."
        )


def _as_mask(value: Any) -> torch.Tensor:
    mask = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return (mask.unsqueeze(0) if mask.dim() == 1 else mask).long()


def batch(items: list[TokenInputs | TextInputs], tokenizer: Any, pad_id: int) -> TokenInputs:
    """Left-pad and stack several invokes' inputs; their extra kwargs must agree."""
    extra = items[0].extra
    for index, item in enumerate(items[1:], start=1):
        if item.extra.keys() != extra.keys() or any(
            not _same(item.extra[k], extra[k]) for k in extra
        ):
            raise InputError(
                f"invoke {index} passes model arguments {sorted(item.extra)} that differ from "
                f"invoke 0's {sorted(extra)}; invokes of one trace share one forward call."
            )
    if all(isinstance(item, TextInputs) for item in items):
        return _encode(tokenizer, [text for item in items for text in item.texts], extra)
    tokens = [
        _encode(tokenizer, i.texts, i.extra) if isinstance(i, TextInputs) else i for i in items
    ]
    if len(tokens) == 1:
        return tokens[0]
    lengths = {int(item.input_ids.shape[1]) for item in tokens}
    length = max(lengths)
    ids, masks = [], []
    for item in tokens:
        pad = length - item.input_ids.shape[1]
        ids.append(torch.nn.functional.pad(item.input_ids, (pad, 0), value=pad_id))
        masks.append(torch.nn.functional.pad(item.attention_mask, (pad, 0), value=0))
    padded = None if any(item.padded is not False for item in tokens) else lengths != {length}
    return TokenInputs(torch.cat(ids), torch.cat(masks), dict(extra), padded)


def _encode(tokenizer: Any, texts: list[str], extra: dict[str, Any]) -> TokenInputs:
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    return TokenInputs(ids, mask, dict(extra), padded=False if len(texts) == 1 else None)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.equal(b)
    return bool(a == b)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
