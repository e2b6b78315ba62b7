"""Input checks shared by the widgets. Each mistake raises an InputError (a LensError) naming
it and the fix, before anything is displayed, so no empty plot is left behind."""

from __future__ import annotations

from typing import Any

import traitlets as t

from ..errors import InputError


class BadValue(InputError, t.TraitError):
    """A trait value a widget refuses (also a TraitError, as traitlets expects of validators)."""


def require_model(model: Any, where: str, *, text: bool = True) -> None:
    """``model`` is a wrapped lenslab model (with a tokenizer and layers, where ``text``)."""
    if not hasattr(model, "scan"):
        raise InputError(
            f"{where} needs a lenslab model, got a bare {type(model).__name__}: wrap it first, "
            f"e.g. NNsight(module) or LanguageModel('smollm2')."
        )
    if text and (getattr(model, "tokenizer", None) is None or not hasattr(model, "num_layers")):
        raise InputError(
            f"{where} needs a language model (a tokenizer and numbered layers), got "
            f"{type(model).__name__}: use LanguageModel(...)."
        )


def prompt_ids(model: Any, prompt: Any, where: str) -> Any:
    """The ``(1, seq)`` token ids of ``prompt``; refuses a non-string or an empty prompt."""
    if not isinstance(prompt, str):
        raise InputError(
            f"{where} takes the prompt as a string, got {type(prompt).__name__}: pass the text, "
            f"e.g. {where}(model, 'The Eiffel Tower is in')."
        )
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    if ids.shape[-1] == 0:
        raise InputError(
            f"{where} got an empty prompt ({prompt!r} is 0 tokens): pass the text to run, "
            f"e.g. {where}(model, 'The Eiffel Tower is in')."
        )
    return ids


def at_least_one(value: Any, name: str, where: str) -> int:
    """A whole number >= 1 (max_new_tokens, top_k...)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: {name} must be a whole number >= 1, got {value!r}.")
    return value


def component_of(component: Any, views: dict[str, str], where: str) -> str:
    if component not in views:
        raise InputError(
            f"{where}: component must be one of {sorted(views)} (residual stream, attention, "
            f"MLP output), got {component!r}."
        )
    return str(component)
