"""The toolkit on the real SmolLM2: logit lens, activation and attribution patching, steering.

Ground truth is computed with plain hooks and autograd; forward passes are counted with a
plain pre-hook on the root module.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from lenslab import (
    InputError,
    activation_patching,
    attribution_patching,
    logit_lens,
    steer,
    steering_vector,
)

from ..conftest import assert_clean, hooked

EIFFEL = "The Eiffel Tower is located in the city of"
CLEAN = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED = "When John and Mary went to the shops, Mary gave the bag to"


@pytest.fixture
def forwards(smollm2):
    calls = []
    handle = smollm2._model.register_forward_pre_hook(lambda m, a: calls.append(1))
    yield calls
    handle.remove()


def raw_logits(model, prompt, edit=None, module=None):
    modules = {"m": module} if module is not None else {}
    with hooked(modules, edit={"m": edit} if edit else None), torch.no_grad():
        return model._model(**model.tokenizer(prompt, return_tensors="pt")).logits


# -- logit lens -----------------------------------------------------------------------------------


def test_logit_lens(smollm2, forwards):
    lens = logit_lens(smollm2, EIFFEL, top_k=5)
    assert len(forwards) == 1
    assert lens.probs.shape == (30, 10, 5) and lens.tokens.count == 10
    logits = raw_logits(smollm2, EIFFEL)
    final = logits[0].softmax(-1).topk(5)
    torch.testing.assert_close(lens.probs[-1], final.values, atol=1e-4, rtol=1e-4)
    assert torch.equal(lens.token_ids[-1], final.indices)
    paris = smollm2.tokenizer.encode(" Paris")[0]
    top1_last = lens.token_ids[:, -1, 0]
    assert all(int(t) == paris for t in top1_last[-3:])  # the final layers say Paris
    assert all(int(t) != paris for t in top1_last[:10])  # the first ones do not
    figure = lens.plot()
    assert len(figure.data[0].z) == 30 and "10 tokens" in figure.layout.title.text
    assert_clean(smollm2._model)


# -- activation patching --------------------------------------------------------------------------


def test_activation_patching_invariants(smollm2, forwards):
    result = activation_patching(
        smollm2,
        CLEAN,
        CORRUPTED,
        " Mary",
        " John",
        components=["resid"],
        batch_size=150,
        progress=False,
    )
    n = result.clean.count
    assert len(forwards) == result.forward_passes == 1 + -(-30 * n // 150)
    resid = result.scores["resid"]
    assert resid.shape == (30, n)
    first_difference = next(
        i for i, (a, b) in enumerate(zip(result.clean.text, result.corrupted.text)) if a != b
    )
    assert resid[:, :first_difference].abs().max() == 0  # identical prefix: nothing changes
    assert resid[-1, -1] == pytest.approx(1.0, abs=1e-5)  # last position, last layer
    assert result.clean_metric > 0 > result.corrupted_metric
    figure = result.plot()
    assert len(figure.data) == 1 and len(figure.data[0].z) == 30


def test_on_batch_reports_each_forward_in_order_with_the_final_scores(smollm2):
    reports = []
    result = activation_patching(
        smollm2,
        CLEAN,
        CORRUPTED,
        " Mary",
        " John",
        components=["attn", "resid"],
        positions=[11, 13],
        batch_size=7,
        progress=False,
        on_batch=lambda jobs, scores: reports.append((jobs, scores.clone())),
    )
    assert len(reports) == result.forward_passes - 1
    jobs = [job for batch, _ in reports for job in batch]
    expected = [(c, layer, p) for c in ("attn", "resid") for layer in range(30) for p in (11, 13)]
    assert jobs == expected and all(len(batch) <= 7 for batch, _ in reports)
    scores = torch.cat([s for _, s in reports])
    for i, (component, layer, position) in enumerate(jobs):
        column = [11, 13].index(position)
        assert float(scores[i]) == pytest.approx(float(result.scores[component][layer, column]))


def test_patching_every_position_reproduces_the_clean_run(smollm2):
    result = activation_patching(
        smollm2, CLEAN, CORRUPTED, " Mary", " John", positions="all", progress=False
    )
    for component in ("resid",):
        torch.testing.assert_close(
            result.scores[component][:, 0], torch.ones(30), atol=1e-4, rtol=0
        )
    assert set(result.scores) == {"attn", "mlp", "resid"}


def test_one_patch_equals_a_plain_hook_patch(smollm2):
    result = activation_patching(
        smollm2,
        CLEAN,
        CORRUPTED,
        " Mary",
        " John",
        components=["mlp"],
        positions=[3, 12],
        progress=False,
    )
    module = smollm2._model.model.layers[7].mlp
    with hooked({"m": module}) as clean, torch.no_grad():
        smollm2._model(**smollm2.tokenizer(CLEAN, return_tensors="pt"))

    def patch(out):
        out = out.clone()
        out[:, 12] = clean["m"][:, 12]
        return out

    logits = raw_logits(smollm2, CORRUPTED, patch, module)
    mary, john = smollm2.tokenizer.encode(" Mary")[0], smollm2.tokenizer.encode(" John")[0]
    difference = float(logits[0, -1, mary] - logits[0, -1, john])
    expected = (difference - result.corrupted_metric) / (
        result.clean_metric - result.corrupted_metric
    )
    assert float(result.scores["mlp"][7, 1]) == pytest.approx(expected, abs=1e-4)


def test_prompts_of_different_lengths_are_refused(smollm2):
    with pytest.raises(InputError, match="same number of tokens"):
        activation_patching(smollm2, CLEAN, "When John went", " Mary", " John")
    with pytest.raises(InputError, match=r"is \d tokens for this tokenizer"):
        activation_patching(smollm2, CLEAN, CORRUPTED, " Maryanne Smith", " John")


# -- attribution patching -------------------------------------------------------------------------


def test_attribution_patching_matches_autograd_and_tracks_activation_patching(smollm2, forwards):
    result = attribution_patching(smollm2, CLEAN, CORRUPTED, " Mary", " John")
    assert len(forwards) == 1
    layer = smollm2._model.model.layers[9]
    ids = {p: smollm2.tokenizer(p, return_tensors="pt") for p in (CLEAN, CORRUPTED)}
    with hooked({"l": layer}) as clean, torch.no_grad():
        smollm2._model(**ids[CLEAN])
    with hooked({"l": layer}) as corrupted:
        logits = smollm2._model(**ids[CORRUPTED]).logits
    mary, john = smollm2.tokenizer.encode(" Mary")[0], smollm2.tokenizer.encode(" John")[0]
    (grad,) = torch.autograd.grad(logits[0, -1, mary] - logits[0, -1, john], [corrupted["l"]])
    span = result.clean_metric - result.corrupted_metric
    expected = ((clean["l"] - corrupted["l"].detach()) * grad).sum(-1)[0] / span
    torch.testing.assert_close(result.scores["resid"][9], expected, atol=1e-4, rtol=1e-3)
    patching = activation_patching(
        smollm2,
        CLEAN,
        CORRUPTED,
        " Mary",
        " John",
        components=["resid"],
        batch_size=150,
        progress=False,
    )
    correlation = result.correlation(patching)
    assert correlation["resid"] > 0.5
    assert result.plot().data


# -- steering -------------------------------------------------------------------------------------


def test_steering_vector_is_a_difference_of_means(smollm2, forwards):
    vector = steering_vector(smollm2, ["I love you", "Love"], ["I hate you", "Hate"], layer=10)
    assert len(forwards) == 1
    outs = []
    for prompt in ("I love you", "Love", "I hate you", "Hate"):
        with hooked({"l": smollm2._model.model.layers[10]}) as got, torch.no_grad():
            smollm2._model(**smollm2.tokenizer(prompt, return_tensors="pt"))
        outs.append(got["l"][0, -1])
    expected = (outs[0] + outs[1]) / 2 - (outs[2] + outs[3]) / 2
    torch.testing.assert_close(vector, expected, atol=1e-3, rtol=1e-4)


def test_love_minus_hate_raises_log_p_love_with_the_coefficient(smollm2):
    # Measured first: at layer 10, the last position, coefficients 0-4 raise log P(" love")
    # from about -13.2 to -7.6 step by step.
    vector = steering_vector(smollm2, ["Love"], ["Hate"], layer=10)
    curve = []
    for coefficient in (0, 1, 2, 3, 4):
        result = steer(
            smollm2, "I think that you are", vector, 10, coefficient=coefficient, positions=-1
        )
        baseline, steered = result.log_prob(smollm2, " love")
        curve.append(steered)
    assert steered != baseline
    assert curve[0] == pytest.approx(baseline, abs=1e-4)
    assert all(later > earlier for earlier, later in itertools.pairwise(curve))


def test_steer_equals_a_plain_hook_and_generates(smollm2, forwards):
    vector = steering_vector(smollm2, ["Love"], ["Hate"], layer=10)
    forwards.clear()
    result = steer(smollm2, "I think that you are", vector, 10, coefficient=2.0, positions=-1)
    assert len(forwards) == 1

    def add(out):
        out = out.clone()
        out[:, -1] += 2.0 * vector
        return out

    logits = raw_logits(smollm2, "I think that you are", add, smollm2._model.model.layers[10])
    torch.testing.assert_close(result.steered, logits[0, -1].log_softmax(-1), atol=1e-4, rtol=0)
    generated = steer(
        smollm2, "I think that you are", vector, 10, coefficient=4.0, max_new_tokens=5
    )
    assert generated.texts[0] != generated.texts[1]
    assert all(text.startswith("I think that you are") for text in generated.texts)
    assert generated.plot(smollm2).data


def test_a_user_metric_is_normalized_the_same_way(smollm2):
    mary = smollm2.tokenizer.encode(" Mary")[0]

    def probability_of_mary(logits):
        return logits[:, -1].softmax(-1)[:, mary]

    result = activation_patching(
        smollm2,
        CLEAN,
        CORRUPTED,
        " Mary",
        " John",
        components=["resid"],
        positions=[len(smollm2.tokenizer(CLEAN).input_ids) - 1],
        metric=probability_of_mary,
        progress=False,
    )
    clean_p = float(raw_logits(smollm2, CLEAN)[0, -1].softmax(-1)[mary])
    assert result.clean_metric == pytest.approx(clean_p, rel=1e-4)
    assert float(result.scores["resid"][-1, 0]) == pytest.approx(1.0, abs=1e-4)
