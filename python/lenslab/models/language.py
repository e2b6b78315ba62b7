"""LanguageModel: a Hugging Face causal LM plus its tokenizer, traced like any module.

Built lazily by default, as nnsight does: the module tree is created on the meta device (no
weights, instant), so ``print(model)`` and module paths work at once; the real weights load on
the first trace, or on ``model.dispatch()``.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import os
from functools import cached_property
from typing import Any

import torch
from torch import nn

from ..engine.envoy import Envoy
from ..engine.interleaver import Run
from ..engine.registry import open_tracer
from ..engine.tracer import Tracer
from ..errors import InputError, RenameError
from .aliases import Rename, split_rename
from .inputs import TextInputs, TokenInputs, batch, position_ids, tokenize
from .loading import checkpoint_path, load_config, load_model, load_tokenizer, meta_model
from .module import NNsight
from .standard import CANDIDATES, Indexed, Layout, LayoutError, check_shapes, find_layout


class LanguageModel(NNsight):
    """A causal language model from a checkpoint path, a short name, or a loaded HF module.

    Args:
        model: ``"smollm2"`` (the bundled SmolLM2-135M-Instruct), a local checkpoint
            directory or hub name already in the local cache, or a loaded ``PreTrainedModel``.
        tokenizer: defaults to the checkpoint's own.
        device_map: as for ``from_pretrained``.
        torch_dtype: the older name of ``dtype``.
        dtype: the weights' dtype, as for ``from_pretrained``.
        dispatch: load the weights now instead of on first use.

    Examples:
        >>> model = LanguageModel("smollm2")
        >>> with model.trace("The Eiffel Tower is located in the city of"):
        ...     hidden = model.model.layers[10].output.save()   # (batch, seq, 576)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module,
        *,
        tokenizer: Any = None,
        device_map: Any = None,
        torch_dtype: torch.dtype | str | None = None,
        dtype: torch.dtype | str | None = None,
        dispatch: bool = False,
        rename: Rename | None = None,
        **load_kwargs: Any,
    ) -> None:
        self._path: str | None = None
        self._load_kwargs: dict[str, Any] = {}
        if isinstance(model, nn.Module):
            module = model
        elif isinstance(model, (str, os.PathLike)):
            path = checkpoint_path(model)
            self._path = path
            self._load_kwargs = {
                "device_map": device_map,
                "dtype": dtype or torch_dtype,
                **load_kwargs,
            }
            tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path)
            if dispatch:
                module = load_model(path, **self._load_kwargs)
            else:
                module = meta_model(load_config(path), dtype or torch_dtype)
        else:
            raise InputError(
                f"LanguageModel takes a checkpoint name or path, or a loaded model; got "
                f"{type(model).__name__}."
            )
        super().__init__(module)
        self.tokenizer = _ready_tokenizer(tokenizer)
        self._dispatched = self._path is None or dispatch
        overrides, aliases = split_rename(module, rename or {}, CANDIDATES)
        self._rename = overrides  # standardized names -> module paths (models/standard.py)
        self._set_aliases(aliases)  # nnsight's module aliases (models/aliases.py)
        self._layout_problem: LayoutError | None = None
        self._layout: Layout | None = None
        try:
            self._layout = find_layout(module, self._rename)
            check_shapes(self)
        except LayoutError as problem:  # the raw module tree still works; the view says why not
            self._layout, self._layout_problem = None, problem
        self._check_named_aliases()

    # An alias may carry a standardized name (rename={"transformer.h": "layers"}) when it
    # names the same module the standardized view does.
    _free_names = frozenset({"layers", "token_embeddings", "ln_final", "lm_head"})

    def _check_named_aliases(self) -> None:
        for alias, target in (self._aliases or {}).get("model", {}).items():
            if alias in self._free_names:
                standard = getattr(self._layout, alias, None)
                if standard != target:
                    raise RenameError(
                        f"rename: the alias {alias!r} would stand for {target}, but "
                        f"model.{alias} is the standardized view's "
                        f"{standard or '(unmapped)'}. Choose another alias, or map the "
                        f"standardized name instead: rename={{{alias!r}: {target!r}}}."
                    )

    # -- what nnsight users reach for -----------------------------------------------------------

    @property
    def _model(self) -> nn.Module:
        """The wrapped Hugging Face module."""
        return self._module

    @property
    def config(self) -> Any:
        return self._module.config

    @property
    def device(self) -> torch.device:
        return _device_of(self._module)

    @property
    def dispatched(self) -> bool:
        """Whether the real weights are loaded (False while the model lives on ``meta``)."""
        return self._dispatched

    def dispatch(self) -> None:
        """Load the real weights now; module paths and envoys stay valid."""
        if self._dispatched:
            return
        assert self._path is not None
        self._rebind(load_model(self._path, **self._load_kwargs))
        self.__dict__.pop("_takes_position_ids", None)
        self._dispatched = True

    # -- the standardized view (models/standard.py) ---------------------------------------------

    @property
    def layers(self) -> Envoy:
        """The decoder blocks, whatever the architecture calls them."""
        return self._at(self._standard().layers)

    @property
    def layers_output(self) -> Indexed:
        """``[i]``: block i's output hidden state ``(batch, seq, d_model)``; assignable."""
        self._standard()
        return Indexed(self, None, "output", 0)

    @property
    def layers_input(self) -> Indexed:
        """``[i]``: the hidden state entering block i; assignable."""
        self._standard()
        return Indexed(self, None, "input", None)

    @property
    def attentions_output(self) -> Indexed:
        """``[i]``: block i's attention output ``(batch, seq, d_model)``; assignable."""
        self._standard()
        return Indexed(self, "attention", "output", 0)

    @property
    def mlps_output(self) -> Indexed:
        """``[i]``: block i's MLP output ``(batch, seq, d_model)``; assignable."""
        self._standard()
        return Indexed(self, "mlp", "output", 0)

    @property
    def attention_probabilities(self) -> Indexed:
        """``[i]``: block i's attention pattern ``(batch, heads, seq, seq)``.

        Needs eager attention and ``output_attentions=True`` in the trace:
        ``model.use_eager_attention()``, then ``model.trace(prompt, output_attentions=True)``.
        """
        self._standard()
        return Indexed(self, "attention", "output", 1)

    @property
    def token_embeddings(self) -> Envoy:
        return self._at(self._standard().token_embeddings)

    @property
    def ln_final(self) -> Envoy:
        return self._at(self._standard().ln_final)

    @property
    def lm_head(self) -> Envoy:
        return self._at(self._standard().lm_head)

    @property
    def logits(self) -> torch.Tensor:
        """Inside a trace: the output logits ``(batch, seq, vocab)``."""
        return self.output.logits

    @property
    def next_token_probs(self) -> torch.Tensor:
        """Inside a trace: next-token probabilities at the last position ``(batch, vocab)``."""
        return self.logits[:, -1].softmax(dim=-1)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def use_eager_attention(self) -> None:
        """Compute attention explicitly, so traces can read ``attention_probabilities``."""
        self._module.set_attn_implementation("eager")

    def _watch_targets(
        self, steps: tuple[tuple[str, Any], ...], kind: str
    ) -> tuple[tuple[nn.Module, str], ...]:
        """Source accesses through standardized names, translated to the real module paths."""
        layout = self._layout
        if steps and steps[0] == ("attr", "generator"):  # outside the model's own tree
            return self.generator._watch_targets(steps[1:], kind)
        if layout is not None and kind in INDEXED_VALUES and steps:
            part, kind = INDEXED_VALUES[kind]
            inner = (("attr", getattr(layout, part)),) if part else ()
            steps = (*_steps(layout.layers), steps[-1], *inner)
        elif layout is not None and steps and steps[0][0] == "attr" and steps[0][1] in NAMED:
            steps = (*_steps(getattr(layout, steps[0][1])), *steps[1:])
        return super()._watch_targets(steps, kind)

    def _standard(self) -> Layout:
        if self._layout is None:
            assert self._layout_problem is not None
            raise self._layout_problem
        return self._layout

    def _at(self, path: str) -> Envoy:
        envoy: Envoy = self
        for name in path.split("."):
            envoy = envoy._child(name)
        return envoy

    # -- generation -------------------------------------------------------------------------------

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """Generate with interventions: ``with model.generate(prompt, max_new_tokens=N):``.

        Reads and edits apply to the first step (the prompt) unless placed in
        ``for step in tracer.iter[...]`` / ``tracer.all()``. After the block, ``tracer.result``
        (and ``model.generator.output`` inside it) holds the token ids, ``tracer.text`` the
        decoded sequences. Called without inputs inside ``model.trace()`` after
        ``tracer.invoke(...)`` blocks (nnsight's documented form), it runs those invokes as one
        generation and returns the ids.
        """
        if kwargs.pop("remote", False) and not self._hosted:
            from ..remote.tracer import RemoteTracer

            return RemoteTracer(self, "generate", args, kwargs)
        inputs = {k: kwargs.pop(k) for k in ("input_ids", "attention_mask") if k in kwargs}
        _check_generation_options(self._module, kwargs)
        if not args and not inputs:
            tracer = open_tracer(self)
            if tracer is not None:
                return tracer.run_pending("generate", kwargs)
        return Generation(self, args, inputs, method="generate", options=kwargs)

    @property
    def generator(self) -> Envoy:
        """The generation as a module: ``model.generator.output`` is the generated ids."""
        envoy = self.__dict__.get("_generator_envoy")
        if envoy is None:
            envoy = self.__dict__["_generator_envoy"] = Envoy(
                self._generator, "model.generator", self, "model.generator"
            )
        return envoy

    @cached_property
    def _generator(self) -> nn.Module:
        return _Generator()

    # -- seams used by the tracer -----------------------------------------------------------------

    def _ready(self) -> None:
        self.dispatch()

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TokenInputs | TextInputs:
        return tokenize(self.tokenizer, args, kwargs, lambda: _vocab_size(self._module))

    def _call_inputs(
        self, prepared: TokenInputs | TextInputs
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        inputs = batch([prepared], self.tokenizer, self._pad_id)
        call = {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask}
        return (), {**call, **inputs.extra}

    def _batch(
        self, prepared: list[TokenInputs | TextInputs], method: str, options: dict[str, Any]
    ) -> Run:
        inputs = batch(prepared, self.tokenizer, self._pad_id)
        rows: list[slice | None] = [None]
        if len(prepared) > 1:
            bounds = list(itertools.accumulate((p.size for p in prepared), initial=0))
            rows = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        module, device = self._module, self.device
        call = {
            "input_ids": _moved(inputs.input_ids, device),
            "attention_mask": _moved(inputs.attention_mask, device),
            **inputs.extra,
        }
        if method == "generate":
            generator = self._generator
            steps = _max_new_tokens(module, options, inputs.input_ids.shape[1])
            options = dict(options)
            user_streamer = options.pop("streamer", None)
            config = getattr(module, "generation_config", None)
            beams = options.get("num_beams", getattr(config, "num_beams", 1)) or 1

            embed = _input_embedding(module) if beams == 1 else None

            def run() -> Any:
                if embed is None:  # Hugging Face streams no beam search: no streamer values
                    streamer = {"streamer": user_streamer} if user_streamer is not None else {}
                    return generator(module.generate(**call, **options, **streamer))
                tap = _StreamTap(generator.streamer, user_streamer)
                handle = embed.register_forward_pre_hook(tap.emit)
                try:
                    return generator(module.generate(**call, **options, streamer=tap))
                finally:
                    handle.remove()

            return Run(
                run,
                rows,
                inputs.size,
                steps=steps,
                unstepped=frozenset({generator}),
            )
        if "position_ids" not in call and self._takes_position_ids and inputs.has_padding():
            call["position_ids"] = position_ids(inputs.attention_mask).to(device)
        return Run(lambda: module(**call), rows, inputs.size)

    @cached_property
    def _takes_position_ids(self) -> bool:
        return "position_ids" in inspect.signature(self._module.forward).parameters

    @property
    def _pad_id(self) -> int:
        tok = self.tokenizer
        if tok is not None and tok.pad_token_id is not None:
            return int(tok.pad_token_id)
        return int(getattr(self.config, "pad_token_id", None) or 0)


NAMED = frozenset({"layers", "token_embeddings", "ln_final", "lm_head"})
INDEXED_VALUES = {  # standardized indexed name -> (part of the layer, hook kind)
    "layers_output": (None, "output"),
    "layers_input": (None, "input"),
    "attentions_output": ("attention", "output"),
    "mlps_output": ("mlp", "output"),
    "attention_probabilities": ("attention", "output"),
}


def _steps(path: str) -> tuple[tuple[str, Any], ...]:
    return tuple(("attr", name) for name in path.split("."))


class Generation(Tracer):
    """The tracer of ``model.generate(...)``: adds the decoded text."""

    @property
    def text(self) -> list[str]:
        """Each generated sequence (prompt included), decoded without special tokens."""
        if self.result is None:
            return []
        return self.model.tokenizer.batch_decode(self.result, skip_special_tokens=True)


class _Streamer(nn.Module):
    """``model.generator.streamer``: the ids generation hands its streamer, as nnsight has it:
    at step 0 the prompt (``[batch, seq]``), at step ``k`` the token step ``k - 1`` chose
    (``[batch]``). Beam search has none (Hugging Face streams no beam search)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids


class _Generator(nn.Module):
    """Stands for the whole generation, so its result can be read like a module output."""

    def __init__(self) -> None:
        super().__init__()
        self.streamer = _Streamer()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids


class _StreamTap:
    """The ``streamer=`` a traced generation gets (a streamer the user passed gets every put).

    Hugging Face puts the prompt before step 0 and each step's token right after that step's
    forward. The tap keeps each put and calls ``_Streamer`` with it when the next step's forward
    reaches the input embedding (``emit``): inside that step, after its bodies reached it, so
    ``for step in tracer.iter[...]`` reads it there. The last token has no step after it.
    """

    def __init__(self, streamer: nn.Module, user: Any = None) -> None:
        self._streamer = streamer
        self._user = user
        self._pending: torch.Tensor | None = None

    def put(self, value: torch.Tensor) -> None:
        if self._user is not None:
            self._user.put(value)
        self._pending = value

    def end(self) -> None:
        if self._user is not None:
            self._user.end()

    def emit(self, module: nn.Module, args: Any) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._streamer(pending)


def _input_embedding(module: nn.Module) -> nn.Module | None:
    try:
        found = module.get_input_embeddings()  # type: ignore[operator]
    except (AttributeError, NotImplementedError):
        return None
    return found if isinstance(found, nn.Module) else None


def _vocab_size(module: nn.Module) -> int | None:
    """The rows of the model's input embedding (what ids may index), else config.vocab_size."""
    embedding = module.get_input_embeddings() if hasattr(module, "get_input_embeddings") else None
    rows = getattr(embedding, "num_embeddings", None)
    if isinstance(rows, int):
        return rows
    return getattr(getattr(module, "config", None), "vocab_size", None)


def _max_new_tokens(module: nn.Module, options: dict[str, Any], prompt_length: int) -> int:
    if options.get("max_new_tokens") is not None:
        return int(options["max_new_tokens"])
    config = getattr(module, "generation_config", None)
    if config is not None and config.max_new_tokens is not None:
        return int(config.max_new_tokens)
    max_length = options.get("max_length") or getattr(config, "max_length", None) or 20
    return max(int(max_length) - prompt_length, 1)


def _check_generation_options(module: nn.Module, options: dict[str, Any]) -> None:
    """Reject unknown generation keywords up front, naming the closest known one."""
    from transformers import GenerationConfig

    known = set(GenerationConfig().to_dict())
    known |= set(inspect.signature(module.generate).parameters)
    known |= set(inspect.signature(module.forward).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InputError(
            f"model.generate() got unknown keyword arguments: {', '.join(hints)}. Generation "
            "options are those of transformers' GenerationConfig (max_new_tokens, do_sample, "
            "temperature, ...)."
        )


def _ready_tokenizer(tokenizer: Any) -> Any:
    """Left padding (the last token stays at -1) and a pad token, as batching needs."""
    if tokenizer is None:
        return None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _moved(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    return tensor if tensor.device == device else tensor.to(device)


def _device_of(module: nn.Module) -> torch.device:
    """Where inputs go: accelerate's execution device when it dispatched the model (its
    offloaded weights sit on ``meta``, so the first parameter can be anywhere), else where the
    weights are."""
    device = getattr(getattr(module, "_hf_hook", None), "execution_device", None)
    if device is not None:
        return torch.device(device)
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")
