"""Every example of the two seed documents that is valid under transformers 5, with values checked.

Expected values never come from lenslab: plain forward hooks on the Hugging Face module, its
``output_hidden_states``, or its own ``generate`` / ``autograd``.

Where they run: GPT-2 examples on a tiny random GPT-2 with 12 blocks (the seeds index up to
``h[11]``, which the 3-block ``tiny_gpt2`` fixture lacks), sharing SmolLM2's tokenizer; Llama
examples on the real SmolLM2.

Adapted only where transformers 5 forces it: a decoder block now returns a tensor, so the
seeds' ``.output[0]`` is batch row 0 (for one prompt exactly the "(seq_len, d_model)" seed 2
describes, shown to equal ``output[0]`` of the full tensor); ``h[:, 0, :]`` and
``h.transpose(1, 2)`` on that 2-D row become ``h[0, :]`` and ``h.transpose(0, 1)``; the
gradient example reads ``.output`` (a gradient never reaches a fresh view of row 0) and
indexes ``model.output.logits`` (the seed indexes ``model.output``, a ``ModelOutput`` that
takes no tensor index under any transformers version).

Skipped, with the reason:
  - seed 1 "Loading Models" with hub names (``openai-community/gpt2``, ``meta-llama/...``):
    no network; the same options are exercised on the bundled SmolLM2 (seed 2's load example).
  - seed 1 "Remote Execution", "NDIF Remote Execution" (API key setup, ``remote=True``) and
    remote sessions: remote execution is a later issue (``remote=False`` is accepted here).
  - seed 2 rule 4 (nnterp's ``StandardizedTransformer``): about another library.
Generation, gradients, ``tracer.stop()``, ``validate=True`` / ``scan=True`` and local sessions
exist in lenslab, so their examples run here too.
"""

from __future__ import annotations

import pytest
import torch

from .conftest import hooked

PROMPT = "Hello world, this is a test"


@pytest.fixture(scope="module")
def model(tokenizer):
    import transformers as tf

    from lenslab import LanguageModel

    torch.manual_seed(0)
    config = tf.GPT2Config(
        n_embd=32, n_layer=12, n_head=4, n_positions=64, vocab_size=len(tokenizer)
    )
    return LanguageModel(tf.GPT2LMHeadModel(config).eval(), tokenizer=tokenizer)


def captured(model, names, prompt=PROMPT, edit=None):
    """Outputs of the named submodules in a plain forward (optionally edited by hooks)."""
    hf = model._model
    modules = {name: hf.get_submodule(name) for name in names}
    with hooked(modules, edit=edit) as out, torch.no_grad():
        out["logits"] = hf(**model.tokenizer(prompt, return_tensors="pt")).logits
    return out


def close(actual, expected, n=None):
    """Equal up to the float noise of a left-padded batch; ``n``: compare the last n positions."""
    if n is not None:
        actual = actual[..., -n:, :]
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


# -- seed 1: nnsight API reference -----------------------------------------------------------------


def test_model_attributes(model, tokenizer):
    assert model._model.config is model.config
    assert model.tokenizer is tokenizer
    assert type(model._model).__name__ == "GPT2LMHeadModel"
    assert model._model.config.n_layer == 12


def test_finding_module_names(model, capsys):
    print(model._model)
    for name, _module in model._model.named_modules():
        print(name)
    shown = capsys.readouterr().out
    assert "GPT2Block" in shown
    names = shown.splitlines()
    for name in ("transformer.wte", "transformer.wpe", "transformer.h.5.attn", "lm_head"):
        assert name in names


def test_basic_tracing(model, capsys):
    with model.trace(PROMPT) as tracer:
        # Operations are recorded, not executed immediately
        hidden = model.transformer.h[5].output[0].save()
        logits = model.output.save()
    print(hidden.shape)
    truth = captured(model, ["transformer.h.5"])
    assert torch.equal(hidden, truth["transformer.h.5"][0])
    assert capsys.readouterr().out.strip() == str(torch.Size([7, 32]))
    assert torch.equal(logits.logits, truth["logits"])
    assert torch.equal(tracer.result.logits, logits.logits)


def test_output_index_zero_is_row_zero_of_the_block_output(model):
    """transformers 5: the seeds' ``.output[0]`` is batch row 0 of a (batch, seq, d) tensor."""
    with model.trace([PROMPT, "The quick brown fox"]):
        full = model.transformer.h[5].output.save()
        row = model.transformer.h[5].output[0].save()
    assert full.shape == (2, 7, 32) and row.shape == (7, 32)
    assert torch.equal(row, full[0])


def test_tracing_parameters(model):
    with model.trace(PROMPT, remote=False, validate=True, scan=True) as tracer:
        hidden = model.transformer.h[5].output[0].save()
    truth = captured(model, ["transformer.h.5"])
    assert torch.equal(hidden, truth["transformer.h.5"][0])
    assert torch.equal(tracer.result.logits, truth["logits"])


def test_accessing_values(model):
    with model.trace("Hello"):
        layer_output = model.transformer.h[5].output[0]
        attention = model.transformer.h[5].attn.output
        mean = layer_output.mean(dim=-1)
        normed = layer_output / layer_output.norm()
        saved = (mean, normed, attention)
    truth = captured(model, ["transformer.h.5", "transformer.h.5.attn"], "Hello")
    row = truth["transformer.h.5"][0]
    mean, normed, attention = saved
    assert torch.equal(mean, row.mean(dim=-1))
    torch.testing.assert_close(normed, row / row.norm())
    assert isinstance(attention, tuple) and torch.equal(
        attention[0], truth["transformer.h.5.attn"][0]
    )


def test_saving_values(model):
    with model.trace("Hello"):
        hidden = model.transformer.h[5].output[0].save()
    assert isinstance(hidden, torch.Tensor) and hidden.shape == (1, 32)
    assert torch.equal(hidden, captured(model, ["transformer.h.5"], "Hello")["transformer.h.5"][0])


def test_modifying_values(model):
    torch.manual_seed(3)
    some_tensor = torch.randn(32)
    steering_vector = torch.randn(32)
    with model.trace("Hello"):
        # In-place modification
        model.transformer.h[5].output[0][:] = 0
        # Replace with computed value
        model.transformer.h[5].output[0][:] = some_tensor
        # Arithmetic modification
        model.transformer.h[5].output[0][:] *= 0.5
        model.transformer.h[5].output[0][:] += steering_vector
        logits = model.output.logits.save()

    def edit(out):  # row 0 (the only row) of block 5's output, as the four lines leave it
        out = out.clone()
        out[0] = some_tensor * 0.5 + steering_vector
        return out

    expected = captured(model, ["transformer.h.5"], "Hello", {"transformer.h.5": edit})
    torch.testing.assert_close(logits, expected["logits"])
    assert not torch.allclose(logits, captured(model, [], "Hello")["logits"])


def test_proxy_operations(model):
    with model.trace("Hello"):
        h = model.transformer.h[5].output[0]

        # Indexing (h is (seq, d): the seeds' h[:, 0, :] and h[:, -1, :] on a 2-D row)
        first_token = h[0, :]
        last_token = h[-1, :]

        # PyTorch operations
        mean = h.mean(dim=-1)
        norm = h.norm()
        transposed = h.transpose(0, 1)

        # Save results
        mean.save()
        saved = (first_token, last_token, norm, transposed)
    row = captured(model, ["transformer.h.5"], "Hello")["transformer.h.5"][0]
    first_token, last_token, norm, transposed = saved
    assert torch.equal(mean, row.mean(dim=-1))
    assert torch.equal(first_token, row[0]) and torch.equal(last_token, row[-1])
    assert torch.equal(norm, row.norm()) and torch.equal(transposed, row.T)


def test_gpt2_structure(model):
    with model.trace("Hello"):
        # Embeddings
        embed = model.transformer.wte.output.save()
        pos_embed = model.transformer.wpe.output.save()

        # Layer outputs
        layer_out = model.transformer.h[5].output[0].save()

        # Attention
        attn_out = model.transformer.h[5].attn.output.save()

        # MLP
        mlp_out = model.transformer.h[5].mlp.output.save()

        # Final output
        logits = model.output.save()
    names = [
        "transformer.wte",
        "transformer.wpe",
        "transformer.h.5",
        "transformer.h.5.attn",
        "transformer.h.5.mlp",
    ]
    truth = captured(model, names, "Hello")
    assert torch.equal(embed, truth["transformer.wte"])
    assert torch.equal(pos_embed, truth["transformer.wpe"])
    assert torch.equal(layer_out, truth["transformer.h.5"][0])
    assert torch.equal(attn_out[0], truth["transformer.h.5.attn"][0])
    assert torch.equal(mlp_out, truth["transformer.h.5.mlp"])
    assert torch.equal(logits.logits, truth["logits"])


def test_llama_structure(smollm2):
    model = smollm2
    with model.trace("Hello"):
        # Embeddings
        embed = model.model.embed_tokens.output.save()

        # Layer outputs
        layer_out = model.model.layers[10].output[0].save()

        # Attention
        attn_out = model.model.layers[10].self_attn.output.save()

        # MLP
        mlp_out = model.model.layers[10].mlp.output.save()

        # Final output
        logits = model.output.save()
    names = ["model.embed_tokens", "model.layers.10", "model.layers.10.self_attn"]
    truth = captured(model, [*names, "model.layers.10.mlp"], "Hello")
    assert torch.equal(embed, truth["model.embed_tokens"])
    assert torch.equal(layer_out, truth["model.layers.10"][0])
    assert torch.equal(attn_out[0], truth["model.layers.10.self_attn"][0])
    assert torch.equal(mlp_out, truth["model.layers.10.mlp"])
    assert torch.equal(logits.logits, truth["logits"])


def test_common_module_paths(model, smollm2, tiny_mistral):
    """The seed's table: the same paths on GPT-2, Llama and Mistral."""
    gpt2 = model
    assert gpt2.transformer.wte._module is gpt2._model.transformer.wte
    assert gpt2.transformer.h[3].attn._module is gpt2._model.transformer.h[3].attn
    assert gpt2.transformer.h[3].mlp._module is gpt2._model.transformer.h[3].mlp
    for llama_like in (smollm2, tiny_mistral):
        hf = llama_like._model
        assert llama_like.model.embed_tokens._module is hf.model.embed_tokens
        assert llama_like.model.layers[1].self_attn._module is hf.model.layers[1].self_attn
        assert llama_like.model.layers[1].mlp._module is hf.model.layers[1].mlp


def test_multiple_prompts(model):
    with model.trace() as tracer:
        with tracer.invoke("First prompt"):
            hidden1 = model.transformer.h[5].output[0].save()

        with tracer.invoke("Second prompt"):
            hidden2 = model.transformer.h[5].output[0].save()
    for prompt, hidden in (("First prompt", hidden1), ("Second prompt", hidden2)):
        expected = captured(model, ["transformer.h.5"], prompt)["transformer.h.5"][0]
        close(hidden, expected, n=expected.shape[0])


def test_cross_prompt_intervention(model):
    cat, dog = "The cat sat on the", "The dog ran through the"
    # equal lengths: no padding, so the solo runs below are the exact ground truth
    assert len(model.tokenizer(cat).input_ids) == len(model.tokenizer(dog).input_ids)
    with model.trace() as tracer:
        # Get activations from first prompt
        with tracer.invoke("The cat sat on the"):
            cat_hidden = model.transformer.h[6].output[0].save()

        # Inject into second prompt
        with tracer.invoke("The dog ran through the"):
            model.transformer.h[6].output[0][:] = cat_hidden
            output = model.output.save()
    source = captured(model, ["transformer.h.6"], cat)["transformer.h.6"]
    close(cat_hidden, source[0])
    expected = captured(model, ["transformer.h.6"], dog, {"transformer.h.6": lambda o: source})
    close(output.logits, expected["logits"])
    assert not torch.allclose(output.logits, captured(model, [], dog)["logits"], atol=1e-4)


def test_generation(model):
    with model.trace() as tracer:
        with tracer.invoke("Once upon a time"):
            # Intervention during generation
            model.transformer.h[5].output[0][:] *= 1.2

        output = model.generate(max_new_tokens=5, do_sample=False)

    print(model.tokenizer.decode(output[0]))
    # ground truth: HF generate, block 5 scaled on the first forward (the prompt) only
    hf, calls = model._model, []

    def count(module, args):
        calls.append(1)

    def scale_first_step(module, args, out):
        return out * 1.2 if len(calls) == 1 else out

    handles = [
        hf.register_forward_pre_hook(count),
        hf.transformer.h[5].register_forward_hook(scale_first_step),
    ]
    try:
        inputs = model.tokenizer("Once upon a time", return_tensors="pt")
        expected = hf.generate(**inputs, max_new_tokens=5, do_sample=False)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.equal(output, expected) and output.shape[1] == 4 + 5


def test_gradients(model):
    # transformers 5: .output[0] would be a fresh view of batch row 0 that nothing downstream
    # uses, so its .grad stays None; the block's output itself is the hidden state.
    with model.trace("The quick brown fox"):
        hidden = model.transformer.h[5].output.save()
        hidden.retain_grad()

        logits = model.output.logits  # the seed indexes model.output, a ModelOutput
        target_token = model.tokenizer.encode(" jumps")[0]
        loss = -logits[0, -1, target_token]
        loss.backward()

    # Access gradient
    grad = hidden.grad
    hf = model._model
    with hooked({"h": hf.transformer.h[5]}) as out:
        reference = hf(**model.tokenizer("The quick brown fox", return_tensors="pt")).logits
    (expected,) = torch.autograd.grad(-reference[0, -1, target_token], [out["h"]])
    torch.testing.assert_close(grad, expected)
    hf.zero_grad(set_to_none=True)


def test_local_session(smollm2):
    model = smollm2
    with model.session():
        with model.trace("First prompt"):
            h1 = model.model.layers[20].output[0].save()

        with model.trace("Second prompt"):
            h2 = model.model.layers[20].output[0].save()
    for prompt, hidden in (("First prompt", h1), ("Second prompt", h2)):
        assert torch.equal(
            hidden, captured(model, ["model.layers.20"], prompt)["model.layers.20"][0]
        )


def test_early_stopping(model):
    ran_later = []
    handle = model._model.transformer.h[6].register_forward_hook(lambda *args: ran_later.append(1))
    try:
        with model.trace("Hello") as tracer:
            hidden = model.transformer.h[5].output[0].save()
            tracer.stop()  # Don't run remaining layers
    finally:
        handle.remove()
    assert ran_later == []
    assert torch.equal(hidden, captured(model, ["transformer.h.5"], "Hello")["transformer.h.5"][0])


def test_validation(model):
    # Validate shapes before execution
    with model.trace("Hello", validate=True):
        hidden = model.transformer.h[5].output[0].save()
    assert torch.equal(hidden, captured(model, ["transformer.h.5"], "Hello")["transformer.h.5"][0])


def test_module_access_result(model):
    """As in nnsight, ``tracer.result`` inside the block is the traced call's output."""
    with model.trace("Hello") as tracer:
        hidden = model.transformer.h[0].output.save()
        # Access result of a method call
        result = tracer.result
        saved = tracer.result.save()
    expected = captured(model, ["transformer.h.0"], "Hello")
    assert torch.equal(hidden, expected["transformer.h.0"])
    assert torch.equal(result.logits, expected["logits"])
    assert torch.equal(saved.logits, expected["logits"])
    assert torch.equal(tracer.result.logits, expected["logits"])  # and after the block


# -- seed 2: nnsight 0.5 API notes -----------------------------------------------------------------


def test_rule_1_every_input_form_including_keywords_only(model):
    ids = model.tokenizer("The quick brown fox", return_tensors="pt").input_ids
    expected = captured(model, ["transformer.h.0"], "The quick brown fox")["transformer.h.0"][0]
    # WORKS — positional arg creates an Invoker
    with model.trace("The quick brown fox"):
        a = model.transformer.h[0].output[0].save()
    # WORKS — tensor as positional arg
    with model.trace(ids):
        b = model.transformer.h[0].output[0].save()
    # WORKS — explicit invoke with kwargs
    with model.trace() as tracer:
        with tracer.invoke(input_ids=ids):
            c = model.transformer.h[0].output[0].save()
    # nnsight FAILS here (kwargs-only input); lenslab runs it like the others
    with model.trace(input_ids=ids):
        d = model.transformer.h[0].output[0].save()
    for value in (a, b, c, d):
        assert torch.equal(value, expected)


def test_rule_2_save_returns_the_tensor(model):
    with model.trace("text"):
        h = model.transformer.h[0].output[0].save()
    assert isinstance(h, torch.Tensor)
    assert torch.equal(h, captured(model, ["transformer.h.0"], "text")["transformer.h.0"][0])
    with pytest.raises(AttributeError):
        h.value  # noqa: B018


def test_rule_3_shapes(model):
    with model.trace("text"):
        h = model.transformer.h[0].output[0].save()
    # (seq_len, d_model): lenslab keeps the batch dimension, and transformers 5's block output
    # is a tensor, so [0] takes row 0 of (batch, seq_len, d_model)
    assert h.shape == (1, 32)
    hs = h
    if hs.dim() == 3:
        hs = hs[0]  # fallback if batch dim present
    assert hs.shape == (1, 32)
    with model.trace("text"):
        full = model.transformer.h[0].output.save()
    assert full.shape == (1, 1, 32) and torch.equal(full[0], h)


def test_load_model_llama(smollm2):
    from lenslab import LanguageModel

    model = LanguageModel(
        "smollm2",
        device_map="auto",
        dispatch=True,
        torch_dtype=torch.float16,
    )
    n_layers = len(list(model.model.layers))
    assert n_layers == 30 and model.dispatched
    assert {p.dtype for p in model._model.parameters()} == {torch.float16}
    with model.trace("The quick brown fox"):
        h = model.model.layers[3].output[0].save()
    assert h.dtype == torch.float16
    expected = captured(model, ["model.layers.3"], "The quick brown fox")["model.layers.3"][0]
    assert torch.equal(h, expected)


def test_extract_all_layer_activations_llama_pre_tokenized(smollm2):
    model = smollm2
    n_layers = len(list(model.model.layers))
    ids = model.tokenizer("The quick brown fox", return_tensors="pt").input_ids
    saved = [None] * n_layers
    with model.trace() as tracer:
        with tracer.invoke(input_ids=ids):
            for i in range(n_layers):
                saved[i] = model.model.layers[i].output[0].save()

    # saved[i] is a torch.Tensor with shape (seq_len, d_model)
    with torch.no_grad():
        states = model._model(ids, output_hidden_states=True).hidden_states
    assert n_layers == 30
    for i in range(n_layers - 1):  # the last hidden state is taken after the final norm
        assert saved[i].shape == (4, 576)
        assert torch.equal(saved[i], states[i + 1][0])
    last = captured(model, ["model.layers.29"], "The quick brown fox")["model.layers.29"]
    assert torch.equal(saved[-1], last[0])


def test_extract_all_layer_activations_gpt2_string_prompt(model):
    with model.trace("The quick brown fox"):
        saved = [model.transformer.h[i].output[0].save() for i in range(12)]
    with torch.no_grad():
        states = model._model(
            **model.tokenizer("The quick brown fox", return_tensors="pt"), output_hidden_states=True
        ).hidden_states
    for i in range(11):
        assert torch.equal(saved[i], states[i + 1][0])
    last = captured(model, ["transformer.h.11"], "The quick brown fox")["transformer.h.11"]
    assert torch.equal(saved[11], last[0])
