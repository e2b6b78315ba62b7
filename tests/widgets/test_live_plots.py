"""Live plots fill in place as values arrive: rows as binary buffers, one update per layer,
values equal to plain hooks; generation steps equal Hugging Face's own scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenslab import logit_lens
from lenslab.widgets import (
    Heatmap,
    activation_norms,
    generation_plot,
    lens_heatmap,
    live_logit_lens,
)

from ..conftest import hooked

PROMPT = "The Eiffel Tower is located in the city of"


def layer_outputs(model, prompt):
    layers = model._model.model.layers
    with hooked(dict(enumerate(layers))) as seen, torch.no_grad():
        model._model(**model.tokenizer(prompt, return_tensors="pt"))
    return [seen[i][0] for i in range(len(layers))]


def test_rows_travel_as_float32_buffers_and_update_in_place(wire):
    plot = Heatmap(rows=["a", "b"], cols=["x", "y", "z"])
    sent = wire(plot)
    assert np.isnan(plot.array).all()
    plot.set_row(1, torch.tensor([1.0, 2.0, 3.0]), text=["p", "q", "r"])
    updates = sent.updates("values")
    assert len(updates) == 1
    message, buffers = updates[0]
    assert ["values"] in message["buffer_paths"] and "values" not in message["state"]
    assert [len(bytes(b)) for b in buffers] == [2 * 3 * 4]
    assert np.frombuffer(bytes(buffers[0]), "<f4")[3:].tolist() == [1.0, 2.0, 3.0]
    assert plot.text == [["", "", ""], ["p", "q", "r"]]
    assert "<table" in plot._repr_mimebundle_()[0]["text/html"]


def test_activation_norms_fill_layer_by_layer_with_the_hooked_norms(smollm2):
    seen_rows = []
    original = Heatmap.set_row

    def spy(self, row, values, **kwargs):
        seen_rows.append(row)
        original(self, row, values, **kwargs)

    Heatmap.set_row = spy
    try:
        plot = activation_norms(smollm2, PROMPT, display=False)
    finally:
        Heatmap.set_row = original
    assert seen_rows == list(range(30))
    expected = torch.stack([h.norm(dim=-1) for h in layer_outputs(smollm2, PROMPT)])
    np.testing.assert_allclose(plot.array, expected.numpy(), rtol=1e-4)


def test_live_logit_lens_equals_norm_and_unembedding_of_hooked_layers(smollm2):
    plot = live_logit_lens(smollm2, PROMPT, top_k=3, display=False)
    hf = smollm2._model
    with torch.no_grad():
        for layer, hidden in enumerate(layer_outputs(smollm2, PROMPT)):
            top = hf.lm_head(hf.model.norm(hidden)).softmax(-1).topk(3)
            np.testing.assert_allclose(plot.array[layer], top.values[:, 0].numpy(), atol=1e-4)
            words = [smollm2.tokenizer.decode(int(i)) for i in top.indices[:, 0]]
            assert plot.text[layer] == words
    assert plot.text[-1][-1] == " Paris"
    assert plot.hover[-1][-1].startswith("' Paris': ")
    assert len(plot.hover[-1][-1].splitlines()) == 3


def test_a_logit_lens_result_in_one_line(smollm2):
    lens = logit_lens(smollm2, PROMPT, top_k=5)
    plot = lens_heatmap(lens)
    np.testing.assert_allclose(plot.array, lens.probs[:, :, 0].numpy())
    assert plot.text[-1][-1] == lens.top_tokens[-1][-1][0]


def test_generation_plot_tracks_each_step_like_hugging_face_scores(smollm2):
    plot, text = generation_plot(smollm2, PROMPT, max_new_tokens=4, display=False)
    ids = smollm2.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = smollm2._model.generate(
            **ids,
            max_new_tokens=4,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    probs = [s[0].softmax(-1) for s in out.scores]
    assert plot.values("top-1 probability") == pytest.approx(
        [float(p.max()) for p in probs], abs=1e-4
    )
    entropy = [float(-(p * p.clamp_min(1e-12).log()).sum()) for p in probs]
    assert plot.values("entropy (nats)") == pytest.approx(entropy, abs=1e-3)
    assert text == smollm2.tokenizer.decode(out.sequences[0], skip_special_tokens=True)
    # each step is labelled with the token generated there, on the axis and on hover
    new_ids = out.sequences[0, ids["input_ids"].shape[1] :].tolist()
    generated = [smollm2.tokenizer.decode(i) for i in new_ids]
    assert plot.tokens == generated and plot.steps == [0, 1, 2, 3]
    figure = plot.figure
    bottom = figure.layout[f"xaxis{len(plot.series)}"]
    assert list(bottom.ticktext) == [f"{i}: {t!r}" for i, t in enumerate(generated)]
    for trace in figure.data:
        assert list(trace.customdata) == [repr(t) for t in generated]
        assert "%{customdata}" in trace.hovertemplate and trace.name in trace.hovertemplate
        assert "%{y" in trace.hovertemplate and "step %{x}" in trace.hovertemplate
    # each metric on its own y axis, titled with its name
    assert [t.yaxis for t in figure.data] == ["y", "y2"]
    assert figure.layout.yaxis.title.text == "top-1 probability"
    assert figure.layout.yaxis2.title.text == "entropy (nats)"
    bundle = plot._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "<table" in bundle["text/html"]
