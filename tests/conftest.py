"""Shared fixtures: the real SmolLM2, tiny random models of other layouts, and ground truth.

Ground truth never goes through lenslab: plain ``register_forward_hook`` captures and edits,
and ``output_hidden_states``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct, weights loaded (shared: tests must leave it clean)."""
    from lenslab import LanguageModel

    model = LanguageModel("smollm2", dispatch=True)
    yield model
    assert_clean(model._model)


@pytest.fixture(scope="session")
def tokenizer(smollm2):
    return smollm2.tokenizer


def _tiny_config(kind: str, vocab: int) -> Any:
    import transformers as tf

    common = dict(vocab_size=vocab, num_attention_heads=4)
    if kind == "gpt2":
        return tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=64, vocab_size=vocab)
    if kind == "llama":
        return tf.LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_key_value_heads=2,
            **common,
        )
    if kind == "mistral":
        return tf.MistralConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_key_value_heads=2,
            **common,
        )
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, **common)
    if kind == "qwen2":
        return tf.Qwen2Config(num_key_value_heads=2, **small)
    if kind == "gemma":
        return tf.GemmaConfig(num_key_value_heads=2, head_dim=8, **small)
    if kind == "gpt_neox":
        return tf.GPTNeoXConfig(**small)
    raise ValueError(kind)


TINY_KINDS = ("gpt2", "llama", "mistral", "qwen2", "gemma", "gpt_neox")


def make_tiny(kind: str, tokenizer: Any = None, seed: int = 0, attention: str | None = None):
    """A tiny random causal LM of ``kind`` wrapped in LanguageModel, sharing SmolLM2's vocab.

    ``attention``: transformers' attention implementation (e.g. "eager"); its default if None.
    """
    import transformers as tf

    from lenslab import LanguageModel

    torch.manual_seed(seed)
    vocab = len(tokenizer) if tokenizer is not None else 128
    config = _tiny_config(kind, vocab)
    options = {"attn_implementation": attention} if attention else {}
    hf = tf.AutoModelForCausalLM.from_config(config, **options).eval()
    return LanguageModel(hf, tokenizer=tokenizer)


@pytest.fixture(scope="session", params=["gpt2", "llama", "mistral"])
def tiny(request, tokenizer):
    return make_tiny(request.param, tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2(tokenizer):
    return make_tiny("gpt2", tokenizer)


@pytest.fixture(scope="session")
def tiny_llama(tokenizer):
    return make_tiny("llama", tokenizer)


@pytest.fixture(scope="session")
def tiny_mistral(tokenizer):
    return make_tiny("mistral", tokenizer)


@pytest.fixture(params=["tiny_gpt2", "tiny_llama", "tiny_mistral", "smollm2"])
def lm(request):
    """Each supported layout: tiny random GPT-2, Llama, Mistral, and the real SmolLM2."""
    return request.getfixturevalue(request.param)


def layers_of(hf: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a HF causal LM (GPT-2 ``transformer.h``, Llama ``model.layers``,
    GPT-NeoX ``gpt_neox.layers``)."""
    base = getattr(hf, "transformer", None) or getattr(hf, "gpt_neox", None) or hf.model
    return base.h if hasattr(base, "h") else base.layers


def _from_lenslab(hook: Any) -> bool:
    owner = getattr(hook, "__self__", hook)
    return any(
        (getattr(x, "__module__", "") or "").startswith("lenslab") for x in (owner, type(owner))
    )


def assert_clean(module: nn.Module) -> None:
    """No lenslab hook is left on any submodule (transformers keeps some of its own)."""
    for name, sub in module.named_modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            left = [h for h in getattr(sub, attr, {}).values() if _from_lenslab(h)]
            assert not left, f"{name or 'root'} still has lenslab {attr}: {left}"
    assert not hasattr(torch.ones(1), "save"), "tensors still have .save() after the trace"
    assert "grad" not in torch.Tensor.__dict__, "torch.Tensor.grad left patched"


@contextmanager
def hooked(
    modules: dict[str, nn.Module],
    edit: dict[str, Callable[[Any], Any]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Plain torch forward hooks: capture each module's output, optionally replacing it first."""
    captured: dict[str, Any] = {}
    edit = edit or {}
    handles = []
    for name, module in modules.items():

        def hook(mod, args, output, name=name):
            if name in edit:
                output = edit[name](output)
            captured[name] = output
            return output

        handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernelspec that runs this interpreter (the venv's), found first on JUPYTER_PATH.

    So the test does not depend on which "python3" kernel the machine or the venv happens to
    have installed (or on a kernelspec's bare ``python`` resolving through PATH).
    """
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / "lenslab-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "lenslab test", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    previous = os.environ.get("JUPYTER_PATH")
    paths = [str(tmp_path / "jupyter"), *([previous] if previous else [])]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(paths))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return "lenslab-test"
