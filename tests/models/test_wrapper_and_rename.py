"""The wrapper stays the wrapper (torch's module methods, modules() / named_modules()), and
nnsight's ``rename=`` aliases, against plain torch calls and forward hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lenslab import DeviceError, LanguageModel, NNsight, RenameError

from ..conftest import assert_clean, hooked, layers_of, make_tiny

PROMPT = "The Eiffel Tower is located in the city of"


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


# -- the wrapper stays the wrapper --------------------------------------------------------------


def test_torch_module_methods_return_the_wrapper_and_act_on_the_module():
    module = net()
    model = NNsight(module)
    assert model.to("cpu") is model and model.cpu() is model
    assert model.train() is model and module.training
    assert model.eval() is model and not module.training
    assert model.half() is model and module[0].weight.dtype == torch.float16
    assert model.bfloat16() is model and module[0].weight.dtype == torch.bfloat16
    assert model.double() is model and module[0].weight.dtype == torch.float64
    assert model.float() is model and module[0].weight.dtype == torch.float32
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in module.parameters())
    assert model[0].to(torch.float64) is model[0] and module[0].weight.dtype == torch.float64
    model.float()
    x = torch.randn(3, 4)
    with model.eval().to("cpu").trace(x):  # chained calls still trace
        hidden = model[1].output.save()
    torch.testing.assert_close(hidden, module[1](module[0](x)))
    assert_clean(module)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_device_error_and_changes_nothing():
    module = net()
    model = NNsight(module)
    with pytest.raises(DeviceError, match="needs a CUDA GPU"):
        model.cuda()
    with pytest.raises(DeviceError, match="needs a CUDA GPU"):
        model.to("cuda")
    assert module[0].weight.device.type == "cpu"


def test_a_language_model_keeps_its_wrapper_through_conversions(tokenizer):
    model = make_tiny("llama", tokenizer)  # its own copy: conversions change the weights
    assert model.half().float().eval() is model
    assert isinstance(model.to("cpu"), LanguageModel)
    with model.trace(PROMPT):
        logits = model.output.logits.save()
    with torch.no_grad():
        expected = model._model(**tokenizer(PROMPT, return_tensors="pt")).logits
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_llama"])
def test_modules_and_named_modules_yield_envoys_with_paths(request, name):
    model = request.getfixturevalue(name)
    named = model.named_modules()
    torch_named = list(model._model.named_modules())
    assert [path for path, _ in named] == ["model" + (f".{p}" if p else "") for p, _ in torch_named]
    assert [envoy._module for _, envoy in named] == [m for _, m in torch_named]
    assert all(envoy.path == path for path, envoy in named)
    assert [e.path for e in model.modules()] == [p for p, _ in named]
    linears = model.modules(include_fn=lambda e: isinstance(e._module, nn.Linear))
    assert linears and all(isinstance(e._module, nn.Linear) for e in linears)
    # The paths lead back to the same envoys, and name modules for a trace.
    _, deep = named[-2]
    assert model.get(deep.path.removeprefix("model.")) is deep
    with model.trace(PROMPT) as tracer:
        cache = tracer.cache(modules=[deep.path])
    with hooked({"deep": deep._module}) as truth, torch.no_grad():
        model._model(**model.tokenizer(PROMPT, return_tensors="pt"))
    torch.testing.assert_close(cache[deep.path].output, truth["deep"])


# -- rename= ------------------------------------------------------------------------------------

RENAMES = {
    "gpt2": {"transformer.h": "layers", ".attn": "attention", "mlp": ["ffn", "feed_forward"]},
    "llama": {"model.layers": "blocks", "self_attn": "attention", "mlp": ["ffn", "feed_forward"]},
}


@pytest.fixture(params=["gpt2", "llama"])
def renamed(request, tokenizer):
    """(the same tiny model wrapped with rename=, its HF module, its alias for the blocks)."""
    plain = make_tiny(request.param, tokenizer)
    model = LanguageModel(plain._model, tokenizer=tokenizer, rename=RENAMES[request.param])
    return model, plain._model, "layers" if request.param == "gpt2" else "blocks"


def original_blocks(model):
    return model.transformer.h if hasattr(model._model, "transformer") else model.model.layers


def test_old_and_new_names_reach_the_same_modules(renamed):
    model, hf, alias = renamed
    blocks = getattr(model, alias)
    assert blocks is original_blocks(model)
    assert blocks[1].ffn is blocks[1].feed_forward is blocks[1].mlp
    assert blocks[1].attention is original_blocks(model)[1]._lookup(
        "attn" if alias == "layers" else "self_attn"
    )
    assert blocks[1].ffn.path == original_blocks(model)[1].mlp.path  # the real path
    assert "ffn" in dir(blocks[1])
    hf_blocks = layers_of(hf)
    with hooked({"mlp": hf_blocks[1].mlp, "1": hf_blocks[1]}) as truth, torch.no_grad():
        hf(**model.tokenizer(PROMPT, return_tensors="pt"))
    with model.trace(PROMPT):
        by_alias = blocks[1].ffn.output.save()
        by_name = original_blocks(model)[1].mlp.output.save()
        standard = model.layers_output[1].save()  # the standardized view still works
    assert by_alias is by_name
    torch.testing.assert_close(by_alias, truth["mlp"])
    torch.testing.assert_close(standard, truth["1"])


def test_edits_through_aliases_batched_in_generation_and_in_model_edit(renamed):
    model, hf, alias = renamed
    blocks = getattr(model, alias)
    tok = model.tokenizer
    prompts = ["The cat sat on the mat", "A dog ran in the park"]
    hf_blocks = layers_of(hf)
    with hooked({"mlp": hf_blocks[0].mlp}, edit={"mlp": torch.zeros_like}), torch.no_grad():
        expected = hf(**tok(prompts, return_tensors="pt", padding=True)).logits
        expected_ids = hf.generate(
            **tok(prompts[0], return_tensors="pt"), max_new_tokens=3, do_sample=False
        )
    rows: list[torch.Tensor] = []
    with model.trace() as tracer:  # batched: one invoke per prompt, the edit in each
        for prompt in prompts:
            with tracer.invoke(prompt):
                blocks[0].feed_forward.output[:] = 0
                rows.append(model.output.logits)
    torch.testing.assert_close(torch.cat(rows), expected, atol=1e-4, rtol=1e-4)
    with model.generate(prompts[0], max_new_tokens=3, do_sample=False) as tracer:
        for _ in tracer.all():
            blocks[0].ffn.output[:] = 0
    assert torch.equal(tracer.result, expected_ids)
    with model.edit() as edited:
        blocks[0].ffn.output[:] = 0
    with edited.trace(prompts):
        edited_logits = edited.output.logits.save()
    torch.testing.assert_close(edited_logits, expected, atol=1e-4, rtol=1e-4)
    with model.trace(prompts) as tracer:  # cache keys through the alias
        cache = tracer.cache(modules=[f"model.{alias}.0.ffn"])
    assert f"model.{alias}.0.feed_forward" in cache
    through_alias = getattr(cache.model, alias)[0].ffn.output  # attribute access, by alias
    assert torch.equal(through_alias, cache[f"model.{alias}.0.feed_forward"].output)
    assert_clean(hf)


def test_rename_mistakes_are_clear(tiny_gpt2):
    hf = tiny_gpt2._model
    tok = tiny_gpt2.tokenizer
    with pytest.raises(RenameError, match=r"matches no module.*Did you mean 'transformer.h'"):
        LanguageModel(hf, tokenizer=tok, rename={"transformer.hh": "layers"})
    with pytest.raises(RenameError, match="not a plain attribute name"):
        LanguageModel(hf, tokenizer=tok, rename={"transformer.h": "my.layers"})
    with pytest.raises(RenameError, match="already has a module or attribute named 'output'"):
        LanguageModel(hf, tokenizer=tok, rename={"attn": "output"})
    with pytest.raises(RenameError, match="already has a module or attribute named 'mlp'"):
        LanguageModel(hf, tokenizer=tok, rename={"attn": "mlp"})
    with pytest.raises(RenameError, match=r"standardized view's transformer\.h"):
        LanguageModel(hf, tokenizer=tok, rename={"transformer.h.0": "layers"})
    with pytest.raises(RenameError, match="matches no module"):
        NNsight(net(), rename={"encoder": "enc"})
    # lenslab's standardized-view override keeps its meaning in the same argument.
    mapped = LanguageModel(hf, tokenizer=tok, rename={"attention": "attn"})
    assert mapped._layout is not None and mapped._layout.attention == "attn"
    assert_clean(hf)


def test_nnsight_wraps_any_module_with_aliases():
    module = net()
    model = NNsight(module, rename={"0": "first", "2": ["last", "head"]})
    x = torch.randn(2, 4)
    with model.trace(x):
        first = model.first.output.save()
        model.head.output[:] = 1
        out = model.output.save()
    torch.testing.assert_close(first, module[0](x))
    assert torch.equal(out, torch.ones(2, 2))
    assert model["first"] is model[0]
    assert_clean(module)
