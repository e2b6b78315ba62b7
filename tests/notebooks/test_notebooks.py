"""Every tutorial notebook runs top to bottom in a real kernel, on the real SmolLM2.

After a notebook's last cell, a probe cell runs in the same kernel: it recomputes the
notebook's key results without lenslab (plain Hugging Face forwards, ``output_hidden_states``,
``torch.autograd.grad``) and prints a JSON verdict, which the test reads.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

TRUTH = """
import json, torch
hf, tok = model._model, model.tokenizer
def raw(text, **options):
    with torch.no_grad():
        return hf(**tok(text, return_tensors="pt"), **options)
"""

PROBES = {
    "01_walkthrough": """
        out = raw(prompt, output_hidden_states=True)
        ids = tok(prompt, return_tensors="pt")
        embeds = hf.model.embed_tokens(ids["input_ids"]).detach()
        with torch.enable_grad():
            full = hf(inputs_embeds=embeds, attention_mask=ids["attention_mask"],
                      output_hidden_states=True)
            after_20 = full.hidden_states[21]
            (grad,) = torch.autograd.grad(full.logits[0, -1, paris_id], after_20)
        verdict = {
            "paris": paris,
            "tree": tree.expression == "model.model.layers[5].mlp.output",
            "hidden": torch.allclose(hidden, out.hidden_states[16], atol=1e-5),
            "logits": torch.allclose(logits, out.logits, atol=1e-4),
            "early_state": torch.allclose(early_state, out.hidden_states[4], atol=1e-5),
            "gradient": torch.allclose(late_grad, grad, atol=1e-6),
            "patched": tok.decode(patched.argmax()),
            "session": torch.allclose(session_patched, patched, atol=1e-3),
            "ablated_changed": not torch.allclose(ablated, out.logits[0, -1]),
            "text": tok.decode(generated[0], skip_special_tokens=True),
        }
    """,
    "02_logit_lens": """
        probs = raw(prompt).logits[0, -1].softmax(-1)
        verdict = {
            "last_layer_top": last_position[-1],
            "first_paris_layer": paris_layers[0],
            "last_layer_probability": abs(probability[-1] - float(probs[paris_id])) < 1e-4,
        }
    """,
    "03_activation_patching": """
        def logit_difference(text):
            last = raw(text).logits[0, -1]
            return float(last[tok.encode(" Mary")[0]] - last[tok.encode(" John")[0]])
        verdict = {
            "clean": abs(patching.clean_metric - logit_difference(clean)) < 1e-3,
            "corrupted": abs(patching.corrupted_metric - logit_difference(corrupted)) < 1e-3,
            "all_positions_restore": bool((everything.scores["resid"] - 1).abs().max() < 1e-4),
            "untouched_positions": float(early.abs().max()),
            "click": abs(outcome.score - float(patching.scores["resid"][20, -1])) < 1e-4,
        }
    """,
    "04_steering": """
        truth = raw(prompt).logits[0, -1].log_softmax(-1)
        words = generated.texts[1][len(prompt):].split()
        verdict = {
            "baseline": abs(baseline - float(truth[tok.encode(" terrible")[0]])) < 1e-4,
            "steered_down": steered < baseline,
            "grows": all(b > a for a, b in zip(log_probs, log_probs[1:])),
            "texts_differ": generated.texts[0] != generated.texts[1],
            "readable": len(words) >= 6 and len(set(words)) >= 0.6 * len(words)
            and sum(w.strip(".,!?'\\"").isalpha() for w in words) >= 0.7 * len(words),
            "panel": bool(panel.baseline) and bool(panel.steered),
        }
    """,
    "06_remote": """
        out = raw(prompt, output_hidden_states=True)
        verdict = {
            "hidden": torch.allclose(remote_hidden, out.hidden_states[16], atol=1e-5),
            "logits": torch.allclose(remote_logits, out.logits, atol=1e-4),
            "patched": tok.decode(remote_patched.argmax()) == " Rome",
            "refused": "open" in refused,
            "stopped": server.poll() is not None,
        }
    """,
    "05_attribution_patching": """
        verdict = {
            "one_pass": attribution.forward_passes,
            "correlation": min(correlation.values()),
        }
    """,
}


def run(name: str, kernel_name: str) -> dict:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    probe = TRUTH + textwrap.dedent(PROBES[name]) + "print(json.dumps(verdict))"
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        cell = nbformat.v4.new_code_cell(probe)
        notebook.cells.append(cell)
        client.execute_cell(cell, len(notebook.cells) - 1)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(PROBES)


def test_walkthrough(kernel_name):
    verdict = run("01_walkthrough", kernel_name)
    assert verdict.pop("paris") == " Paris"
    assert verdict.pop("patched") == " Rome"
    assert verdict.pop("text").startswith("The Eiffel Tower is located in the city of")
    assert all(verdict.values()), verdict


def test_logit_lens(kernel_name):
    verdict = run("02_logit_lens", kernel_name)
    assert verdict["last_layer_top"] == " Paris"
    assert verdict["first_paris_layer"] >= 15, "' Paris' should emerge in the late layers"
    assert verdict["last_layer_probability"]


def test_activation_patching(kernel_name):
    verdict = run("03_activation_patching", kernel_name)
    assert verdict.pop("untouched_positions") < 1e-5
    assert all(verdict.values()), verdict


def test_steering(kernel_name):
    verdict = run("04_steering", kernel_name)
    assert all(verdict.values()), verdict


def test_attribution_patching(kernel_name):
    verdict = run("05_attribution_patching", kernel_name)
    assert verdict["one_pass"] == 1
    assert verdict["correlation"] > 0.5, verdict


def test_remote(kernel_name):
    verdict = run("06_remote", kernel_name)
    assert all(verdict.values()), verdict
