"""Generation with per-step interventions, against raw ``generate`` with plain forward hooks."""

from __future__ import annotations

import warnings

import pytest
import torch

from lenslab import InputError

from ..conftest import assert_clean, layers_of

PROMPT = "The Eiffel Tower is located in the city of"
STEPS = 6


def plain_generate(model, prompt=PROMPT, **options):
    inputs = model.tokenizer(prompt, return_tensors="pt")
    options = {"max_new_tokens": STEPS, "do_sample": False, **options}
    return model._model.generate(**inputs, **options)


def hooked_generate(model, layer, edit, steps=None, prompt=PROMPT, **options):
    """Raw HF generate with a forward hook editing ``layer``'s output on the chosen steps."""
    calls = {"step": -1}
    module = layers_of(model._model)[layer]

    def count(mod, args):
        calls["step"] += 1

    def hook(mod, args, output):
        if steps is None or calls["step"] in steps:
            return edit(output)
        return None

    handles = [model._model.register_forward_pre_hook(count), module.register_forward_hook(hook)]
    try:
        return plain_generate(model, prompt, **options)
    finally:
        for handle in handles:
            handle.remove()


def layer_envoy(model, layer):
    base = model.transformer if hasattr(model._model, "transformer") else model.model
    return (base.h if hasattr(model._model, "transformer") else base.layers)[layer]


@pytest.fixture(params=["smollm2", "tiny_gpt2", "tiny_llama"])
def any_model(request):
    return request.getfixturevalue(request.param)


def steering(model, seed=0):
    torch.manual_seed(seed)
    return torch.randn(model.config.hidden_size) * 4


def test_steering_every_step_matches_a_plain_hook(any_model):
    vector = steering(any_model)
    with any_model.generate(PROMPT, max_new_tokens=STEPS, do_sample=False) as tracer:
        for _ in tracer.all():
            layer_envoy(any_model, 1).output[:] += vector
        ids = any_model.generator.output.save()
    expected = hooked_generate(any_model, 1, lambda out: out + vector)
    assert torch.equal(ids, expected)
    assert torch.equal(tracer.result, expected)
    assert_clean(any_model._model)


def test_zero_coefficient_equals_plain_generate(any_model):
    vector = steering(any_model)
    with any_model.generate(PROMPT, max_new_tokens=STEPS, do_sample=False) as tracer:
        for _ in tracer.all():
            layer_envoy(any_model, 1).output[:] += 0.0 * vector
    assert torch.equal(tracer.result, plain_generate(any_model))


def test_edits_outside_a_loop_apply_to_the_first_step_only(any_model):
    vector = steering(any_model)
    with any_model.generate(PROMPT, max_new_tokens=STEPS, do_sample=False) as tracer:
        layer_envoy(any_model, 1).output[:] += vector
    assert torch.equal(tracer.result, hooked_generate(any_model, 1, lambda o: o + vector, {0}))


@pytest.mark.parametrize("selection, steps", [(slice(1, 3), {1, 2}), ([0, 3], {0, 3}), (4, {4})])
def test_chosen_steps(smollm2, selection, steps):
    vector = steering(smollm2)
    seen = []
    with smollm2.generate(PROMPT, max_new_tokens=STEPS, do_sample=False) as tracer:
        for step in tracer.iter[selection]:
            seen.append(step)
            smollm2.model.layers[8].output[:] += vector
    assert seen == sorted(steps)
    assert torch.equal(tracer.result, hooked_generate(smollm2, 8, lambda o: o + vector, steps))


def test_per_step_values_and_code_after_the_loop(smollm2):
    with smollm2.generate(PROMPT, max_new_tokens=4, do_sample=False) as tracer:
        hidden = []
        for _ in tracer.all():
            hidden.append(smollm2.model.layers[5].output.save())
        after_loop = len(hidden)
    prompt_length = len(smollm2.tokenizer(PROMPT).input_ids)
    assert after_loop == 4
    # With the KV cache, step 0 sees every prompt position, each later step one position.
    assert [h.shape[1] for h in hidden] == [prompt_length, 1, 1, 1]
    captured = []
    module = smollm2._model.model.layers[5]
    handle = module.register_forward_hook(lambda m, a, o: captured.append(o.detach()))
    plain_generate(smollm2, max_new_tokens=4)
    handle.remove()
    for ours, theirs in zip(hidden, captured):
        assert torch.equal(ours, theirs)


def test_early_end_of_sequence_ends_the_loop_cleanly(smollm2):
    plain = plain_generate(smollm2)
    prompt_length = len(smollm2.tokenizer(PROMPT).input_ids)
    stop_token = int(plain[0, prompt_length + 1])  # the second generated token ends generation
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with smollm2.generate(
            PROMPT, max_new_tokens=STEPS, do_sample=False, eos_token_id=stop_token
        ) as tracer:
            steps = []
            for step in tracer.all():
                steps.append(step)
                smollm2.model.layers[5].output.save()
            after = "ran"
    assert steps == [0, 1]
    assert after == "ran"
    assert tracer.result.shape[1] == prompt_length + 2


def test_seed_form_invokes_then_generate_inside_a_trace(smollm2):
    vector = steering(smollm2)
    with smollm2.trace() as tracer:
        with tracer.invoke(PROMPT):
            smollm2.model.layers[8].output[:] += vector
        output = smollm2.generate(max_new_tokens=STEPS, do_sample=False)
    assert torch.equal(output, hooked_generate(smollm2, 8, lambda o: o + vector, {0}))
    assert smollm2.tokenizer.decode(output[0]).startswith(PROMPT)


def test_decoded_text(smollm2):
    with smollm2.generate(PROMPT, max_new_tokens=3, do_sample=False) as tracer:
        pass
    expected = smollm2.tokenizer.batch_decode(
        plain_generate(smollm2, max_new_tokens=3), skip_special_tokens=True
    )
    assert tracer.text == expected
    assert "Paris" in tracer.text[0]


def test_next_moves_to_the_following_step(smollm2):
    captured = []
    module = smollm2._model.model.layers[3]
    handle = module.register_forward_hook(lambda m, a, o: captured.append(o.detach()))
    plain_generate(smollm2, max_new_tokens=3)
    handle.remove()
    with smollm2.generate(PROMPT, max_new_tokens=3, do_sample=False):
        first = smollm2.model.layers[3].output.save()
        second = smollm2.model.layers[3].next().output.save()
    assert torch.equal(first, captured[0])
    assert torch.equal(second, captured[1])


def test_unknown_generation_option_is_named(smollm2):
    with pytest.raises(InputError, match=r"max_new_token.*did you mean 'max_new_tokens'"):
        smollm2.generate(PROMPT, max_new_token=3)


def test_steps_beyond_max_new_tokens_are_rejected_and_model_stays_exact(smollm2):
    before = plain_generate(smollm2)
    with pytest.raises(InputError, match=r"step 6.*at most 6 steps"):
        with smollm2.generate(PROMPT, max_new_tokens=STEPS, do_sample=False) as tracer:
            for _ in tracer.iter[:10]:
                smollm2.model.layers[2].output[:] = 0
    assert_clean(smollm2._model)
    assert torch.equal(plain_generate(smollm2), before)


def test_invokes_in_one_generation_match_a_batched_raw_generate(smollm2):
    prompts = [PROMPT, "Once upon a time"]
    vector = steering(smollm2)
    with smollm2.generate(max_new_tokens=4, do_sample=False) as tracer:
        with tracer.invoke(prompts[0]):
            for _ in tracer.all():
                smollm2.model.layers[6].output[:] += vector
        with tracer.invoke(prompts[1]):
            ids = smollm2.generator.output.save()
    batch = smollm2.tokenizer(prompts, return_tensors="pt", padding=True)
    module = smollm2._model.model.layers[6]

    def steer_first_row(mod, args, output):
        output = output.clone()
        output[0] += vector
        return output

    handle = module.register_forward_hook(steer_first_row)
    try:
        expected = smollm2._model.generate(**batch, max_new_tokens=4, do_sample=False)
    finally:
        handle.remove()
    assert torch.equal(tracer.result, expected)
    assert torch.equal(ids, expected[1:])
