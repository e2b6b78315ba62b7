"""``model.generator.streamer``: what generation hands its streamer, step by step, as nnsight has
it: the prompt at step 0, then at step ``k`` the token step ``k - 1`` chose.

Ground truth: the ids raw ``generate`` returns (step ``k``'s token is column
``prompt_length + k``), and a plain Hugging Face streamer given to the same generation.
"""

from __future__ import annotations

import pytest
import torch

from lenslab import ModuleNotCalledError

from ..conftest import assert_clean

PROMPTS = ["The Eiffel Tower is located in the city of", "Hello"]
STEPS = 5


class Collect:
    """A plain Hugging Face streamer: keeps every put."""

    def __init__(self) -> None:
        self.puts: list[torch.Tensor] = []
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        self.puts.append(value)

    def end(self) -> None:
        self.ended = True


def test_streamer_output_is_the_prompt_then_each_earlier_steps_token(tiny_gpt2):
    model = tiny_gpt2
    inputs = model.tokenizer(PROMPTS[0], return_tensors="pt")
    width = inputs["input_ids"].shape[1]
    raw = model._model.generate(**inputs, max_new_tokens=STEPS, do_sample=False)
    with model.generate(PROMPTS[0], max_new_tokens=STEPS) as tracer:
        first = model.generator.streamer.output.save()  # outside a loop: step 0
        tokens = list().save()
        for _step in tracer.iter[1:]:
            tokens.append(model.generator.streamer.output)
    assert torch.equal(first, raw[:, :width])
    assert len(tokens) == STEPS - 1
    assert torch.equal(torch.cat(tokens), raw[0, width:-1])  # the last token has no step after
    assert_clean(model._model)


def test_streamer_read_after_later_modules_of_the_step(tiny_llama):
    """It is handed over at the step's start: reads in any order still see it."""
    model = tiny_llama
    with model.generate(PROMPTS[0], max_new_tokens=STEPS) as tracer:
        chosen, streamed = list().save(), list().save()
        for _step in tracer.all():
            chosen.append(model.lm_head.output[:, -1].argmax(-1))  # greedy: this step's token
            streamed.append(model.generator.streamer.output)
    ids = tracer.result
    width = ids.shape[1] - STEPS
    assert torch.equal(torch.cat(chosen), ids[0, width:])
    assert torch.equal(streamed[0], ids[:, :width])
    assert torch.equal(torch.cat(streamed[1:]), torch.cat(chosen[:-1]))
    assert_clean(model._model)


def test_streamer_per_invoke_rows_and_a_users_streamer(tiny_llama):
    model = tiny_llama
    user = Collect()
    with model.generate(max_new_tokens=3, streamer=user) as tracer:
        with tracer.invoke(PROMPTS[0]):
            a = list().save()
            for _step in tracer.all():
                a.append(model.generator.streamer.output)
        with tracer.invoke(PROMPTS[1]):
            b = list().save()
            for _step in tracer.all():
                b.append(model.generator.streamer.output)
        with tracer.invoke():
            both = model.generator.streamer.output.save()
    ids = tracer.result
    width = ids.shape[1] - 3
    assert [t.shape for t in a] == [torch.Size([1, width]), torch.Size([1]), torch.Size([1])]
    assert torch.equal(a[0], ids[:1, :width]) and torch.equal(b[0], ids[1:, :width])
    assert torch.equal(torch.cat(a[1:]), ids[0, width:-1])
    assert torch.equal(torch.cat(b[1:]), ids[1, width:-1])
    assert torch.equal(both, ids[:, :width])
    assert len(user.puts) == 4 and user.ended  # the user's streamer: the prompt, then each step
    assert torch.equal(user.puts[0], ids[:, :width])
    assert all(torch.equal(p, ids[:, width + i]) for i, p in enumerate(user.puts[1:]))
    assert_clean(model._model)


def test_beam_search_generates_as_before_without_streamer_values(tiny_gpt2):
    model = tiny_gpt2
    inputs = model.tokenizer(PROMPTS[0], return_tensors="pt")
    raw = model._model.generate(**inputs, max_new_tokens=3, num_beams=2, do_sample=False)
    with model.generate(PROMPTS[0], max_new_tokens=3, num_beams=2) as tracer:
        hidden = model.transformer.h[0].output.save()
    assert torch.equal(tracer.result, raw)  # Hugging Face streams no beam search
    assert hidden.shape[0] == 2  # the beams
    with pytest.raises(ModuleNotCalledError, match="streamer"):
        with model.generate(PROMPTS[0], max_new_tokens=2, num_beams=2):
            model.generator.streamer.output.save()
    assert_clean(model._model)
