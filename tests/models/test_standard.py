"""The standardized view on every supported layout, against output_hidden_states and hooks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import transformers as tf
from torch import nn
from transformers.modeling_outputs import CausalLMOutput

from lenslab import LanguageModel
from lenslab.models.standard import LayoutError

from ..conftest import hooked

PROMPT = "The Eiffel Tower is located in the city of"
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
CONFIGS = {
    "gpt2": lambda v: tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, vocab_size=v),
    "llama": lambda v: tf.LlamaConfig(vocab_size=v, num_key_value_heads=2, **SMALL),
    "mistral": lambda v: tf.MistralConfig(vocab_size=v, num_key_value_heads=2, **SMALL),
    "qwen2": lambda v: tf.Qwen2Config(vocab_size=v, num_key_value_heads=2, **SMALL),
    "gemma2": lambda v: tf.Gemma2Config(vocab_size=v, num_key_value_heads=2, head_dim=8, **SMALL),
    "gemma3": lambda v: tf.Gemma3TextConfig(
        vocab_size=v, num_key_value_heads=2, head_dim=8, **SMALL
    ),
    "gpt_neox": lambda v: tf.GPTNeoXConfig(vocab_size=v, **SMALL),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def model(request, tokenizer):
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(CONFIGS[request.param](len(tokenizer))).eval()
    return LanguageModel(hf, tokenizer=tokenizer)


def test_the_view_reads_every_layout(model):
    n = model.num_layers
    assert n == 3 and model.hidden_size == 32
    with model.trace(PROMPT):
        outputs = [model.layers_output[i].save() for i in range(n)]
        inputs = [model.layers_input[i].save() for i in range(n)]
        attention = model.attentions_output[1].save()
        mlp = model.mlps_output[1].save()
        head = model.lm_head.output.save()
        logits = model.logits.save()
        probs = model.next_token_probs.save()
    with torch.no_grad():
        states = model._model(
            **model.tokenizer(PROMPT, return_tensors="pt"), output_hidden_states=True
        )
    for i in range(n - 1):  # the last hidden state is the final-normed one
        assert torch.equal(outputs[i], states.hidden_states[i + 1]), i
        assert torch.equal(inputs[i + 1], outputs[i])
    layer = model.layers[1]._module
    attention_name, mlp_name = model._layout.attention, model._layout.mlp
    with hooked({"a": getattr(layer, attention_name), "m": getattr(layer, mlp_name)}) as truth:
        with torch.no_grad():
            model._model(**model.tokenizer(PROMPT, return_tensors="pt"))
    assert torch.equal(attention, truth["a"][0])
    assert torch.equal(mlp, truth["m"] if torch.is_tensor(truth["m"]) else truth["m"][0])
    assert torch.equal(logits, states.logits)
    if getattr(model.config, "final_logit_softcapping", None) is None:  # Gemma 2 caps logits
        assert torch.equal(head, logits)
    torch.testing.assert_close(probs, states.logits[:, -1].softmax(-1))
    for value in (*outputs, attention, mlp):
        assert value.shape == (1, logits.shape[1], 32)


def test_the_view_edits_every_layout(model):
    with model.trace(PROMPT):
        model.layers_output[1] = model.layers_output[1] * 0
        model.attentions_output[2] = model.attentions_output[2] * 0
        logits = model.logits.save()
    layer1 = model.layers[1]._module
    attention = getattr(model.layers[2]._module, model._layout.attention)

    def zero_attention(out):
        return (out[0] * 0, *out[1:])

    with hooked({"l": layer1, "a": attention}, edit={"l": lambda o: o * 0, "a": zero_attention}):
        with torch.no_grad():
            expected = model._model(**model.tokenizer(PROMPT, return_tensors="pt")).logits
    torch.testing.assert_close(logits, expected)


def test_standardized_reads_in_any_order(smollm2):
    with smollm2.trace(PROMPT):
        late = smollm2.layers_output[20].save()
        early = smollm2.mlps_output[3].save()
    with hooked({"m": smollm2._model.model.layers[3].mlp}) as truth, torch.no_grad():
        states = smollm2._model(
            **smollm2.tokenizer(PROMPT, return_tensors="pt"), output_hidden_states=True
        ).hidden_states
    assert torch.equal(late, states[21]) and torch.equal(early, truth["m"])


def test_attention_probabilities_with_eager_attention(tokenizer):
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(CONFIGS["llama"](len(tokenizer))).eval()
    model = LanguageModel(hf, tokenizer=tokenizer)
    model.use_eager_attention()
    with model.trace(PROMPT, output_attentions=True):
        pattern = model.attention_probabilities[1].save()
    n = len(tokenizer(PROMPT).input_ids)
    assert pattern.shape == (1, 4, n, n)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(1, 4, n))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix, self.ffn = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, hidden):
        hidden = hidden + self.mix(hidden)
        return hidden + self.ffn(hidden)


class Custom(nn.Module):
    """A causal LM whose names match no known layout."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_size=8)
        self.tok = nn.Embedding(50, 8)
        self.decoder = nn.Module()
        self.decoder.blocks = nn.ModuleList([Block(), Block()])
        self.final = nn.LayerNorm(8)
        self.head = nn.Linear(8, 50)

    def forward(self, input_ids, attention_mask=None):
        hidden = self.tok(input_ids)
        for block in self.decoder.blocks:
            hidden = block(hidden)
        return CausalLMOutput(logits=self.head(self.final(hidden)))


def test_an_unsupported_layout_says_what_could_not_be_mapped():
    model = LanguageModel(Custom())
    with pytest.raises(LayoutError) as caught:
        model.layers_output  # noqa: B018
    message = str(caught.value)
    assert "could not map layers (tried model.layers, transformer.h" in message
    assert "token_embeddings" in message and "rename=" in message
    with model.trace([[1, 2, 3]]):  # the raw tree still works
        raw = model.decoder.blocks[1].output.save()
    assert raw.shape == (1, 3, 8)


def test_rename_maps_a_custom_layout():
    rename = {
        "layers": "decoder.blocks",
        "attention": "mix",
        "mlp": "ffn",
        "token_embeddings": "tok",
        "ln_final": "final",
        "lm_head": "head",
    }
    model = LanguageModel(Custom(), rename=rename)
    with model.trace([[1, 2, 3]]):
        out = model.layers_output[1].save()
        ffn = model.mlps_output[0].save()
        logits = model.logits.save()
    hf = model._model
    with hooked({"b": hf.decoder.blocks[1], "f": hf.decoder.blocks[0].ffn}) as truth:
        expected = hf(torch.tensor([[1, 2, 3]])).logits
    assert torch.equal(out, truth["b"]) and torch.equal(ffn, truth["f"])
    assert torch.equal(logits, expected)
