"""An operation taken from ``.source`` before a lazy model loads its weights still reads the
loaded model's call (the envoys move to the real modules; their ``.source`` moves with them).

Ground truth: a plain forward hook on the module that call runs (the attention's ``c_proj``).
"""

from __future__ import annotations

import torch

from lenslab import LanguageModel

from ..conftest import assert_clean, make_tiny

PROMPT = "The Eiffel Tower is located in the city of"


def test_an_operation_taken_before_loading_reads_the_loaded_model(tmp_path, tokenizer):
    saved = make_tiny("gpt2", tokenizer)
    saved._model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = LanguageModel(str(tmp_path))  # lazy: the module tree lives on the meta device
    assert not model.dispatched
    view = model.transformer.h[0].attn.source
    name = next(n for n in view if "c_proj" in n)
    operation = getattr(view, name)  # taken while the model has no weights
    with torch.no_grad(), model.trace(PROMPT):
        out = operation.output.save()
    assert model.dispatched
    captured = []
    c_proj = model._model.transformer.h[0].attn.c_proj
    handle = c_proj.register_forward_hook(lambda m, a, o: captured.append(o))
    try:
        with torch.no_grad():
            model._model(**tokenizer(PROMPT, return_tensors="pt"))
    finally:
        handle.remove()
    torch.testing.assert_close(out, captured[0])
    assert getattr(model.transformer.h[0].attn.source, name) is operation
    assert_clean(model._model)
