"""The toolkit's figures: every hover names the row, the column and the value."""

from __future__ import annotations

import torch

from lenslab import activation_patching, logit_lens, steer, steering_vector

EIFFEL = "The Eiffel Tower is located in the city of"
CLEAN = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED = "When John and Mary went to the shops, Mary gave the bag to"


def names_row_column_and_value(template: str, row: str, column: str, value: str) -> bool:
    return all(part in template for part in (row, column, value))


def test_every_tool_hover_names_row_column_and_value(smollm2):
    lens = logit_lens(smollm2, EIFFEL, top_k=3, layers=[0, 29])
    (heat,) = lens.plot().data
    assert names_row_column_and_value(heat.hovertemplate, "%{y}", "%{x}", "%{z")
    patching = activation_patching(
        smollm2, CLEAN, CORRUPTED, " Mary", " John", components=["resid"], positions=[-1],
        batch_size=30, progress=False,
    )  # fmt: skip
    for trace in patching.plot().data:
        assert names_row_column_and_value(trace.hovertemplate, "%{y}", "%{x}", "%{z")
    vector = steering_vector(smollm2, ["Love"], ["Hate"], layer=10)
    result = steer(smollm2, "I think that you are", vector, 10, coefficient=2.0, positions=-1)
    figure = result.plot(smollm2, top_k=3)
    assert [t.name for t in figure.data] == ["baseline", "steered (x2)"]
    for trace in figure.data:
        assert names_row_column_and_value(trace.hovertemplate, trace.name, "%{x}", "%{y")
    top = int(result.steered.argmax())
    label = repr(smollm2.tokenizer.decode(top))
    steered = figure.data[1]
    assert steered.y[list(steered.x).index(label)] == torch.exp(result.steered[top]).item()
