"""Remote results equal local results on the real SmolLM2: trace, edits, invokes, generation,
and a session of two traces. Each case is one function run twice, locally and remotely."""

from __future__ import annotations

import torch

PROMPT = "The Eiffel Tower is located in the city of"


def close(local, remote) -> None:
    assert type(local) is type(remote) or isinstance(remote, torch.Tensor)
    assert torch.allclose(local.detach(), remote, atol=1e-4, rtol=1e-4)


def test_trace_values_come_back_as_tensors(server, smollm2):
    def run(remote):
        with smollm2.trace(PROMPT, remote=remote):
            hidden = smollm2.model.layers[15].output.save()
            logits = smollm2.output.logits[:, -1].save()
            attention = smollm2.model.layers[3].self_attn.output[0].save()
            shape = tuple(hidden.shape)
            norms = [smollm2.model.layers[i].output.norm().item() for i in (0, 10)]
        return hidden, logits, attention, shape, norms

    local, remote = run(False), run(True)
    for a, b in zip(local[:3], remote[:3]):
        close(a, b)
    assert local[3] == remote[3] == (1, 10, 576)
    assert remote[4] == torch.tensor(local[4]).tolist() or torch.allclose(
        torch.tensor(local[4]), torch.tensor(remote[4]), atol=1e-3
    )
    assert smollm2.tokenizer.decode(remote[1][0].argmax()) == " Paris"


def test_edits(server, smollm2):
    def run(remote):
        with smollm2.trace(PROMPT, remote=remote):
            for i, layer in enumerate(smollm2.model.layers):
                layer.mlp.output[:, -1] = 0
                if i == 5:
                    layer.output[:, -1] += 1.5
            edited = smollm2.output.logits[:, -1].save()
        return edited

    close(run(False), run(True))


def test_invokes_share_one_batch_and_values(server, smollm2):
    def run(remote):
        with smollm2.trace(remote=remote) as tracer:
            with tracer.invoke("The Colosseum is located in the city of"):
                rome = smollm2.model.layers[26].output[:, -1].save()
            with tracer.invoke(PROMPT):
                smollm2.model.layers[26].output[:, -1] = rome
                patched = smollm2.output.logits[0, -1].save()
        return rome, patched

    (rome, patched), (rome_r, patched_r) = run(False), run(True)
    close(rome, rome_r)
    close(patched, patched_r)
    assert smollm2.tokenizer.decode(patched_r.argmax()) == " Rome"


def test_generation_with_steering(server, smollm2):
    vector = torch.randn(576, generator=torch.Generator().manual_seed(0))

    def run(remote):
        with smollm2.generate(
            "The Eiffel Tower is in", max_new_tokens=5, do_sample=False, remote=remote
        ) as tracer:
            smollm2.model.layers[10].output[:, -1] += vector
            for _ in tracer.all():
                smollm2.model.layers[12].output[:] += 0.1 * vector
            ids = smollm2.generator.output.save()
        return ids, tracer.result, tracer.text

    local, remote = run(False), run(True)
    assert torch.equal(local[0], remote[0])
    assert torch.equal(local[1], remote[1])
    assert local[2] == remote[2]


def test_session_of_two_traces(server, smollm2):
    def run(remote):
        with smollm2.session(remote=remote):
            with smollm2.trace("First prompt"):
                h1 = smollm2.model.layers[20].output.save()
            with smollm2.trace("Second prompt here"):
                smollm2.model.layers[20].output[:, -1] = h1[:, -1]
                h2 = smollm2.model.layers[21].output.save()
        return h1, h2

    (h1, h2), (r1, r2) = run(False), run(True)
    close(h1, r1)
    close(h2, r2)


def test_prints_module_paths_and_sent_values(server, smollm2, capsys):
    layer = smollm2.model.layers[4]
    scale = torch.tensor(2.0)
    with smollm2.trace(PROMPT, remote=True):
        layer.output[:] = layer.output * scale
        after = smollm2.model.layers[5].output.save()
        print("shape on the server:", tuple(after.shape))
    assert "shape on the server: (1, 10, 576)" in capsys.readouterr().out
    with smollm2.trace(PROMPT):
        smollm2.model.layers[4].output[:] = smollm2.model.layers[4].output * 2
        local = smollm2.model.layers[5].output.save()
    close(local, after)


def test_a_remote_trace_leaves_the_client_model_unloaded(server, smollm2_client):
    with smollm2_client.trace(PROMPT, remote=True):
        logits = smollm2_client.output.logits.save()
    assert logits.shape == (1, 10, 49152)
    assert not smollm2_client.dispatched


def test_in_a_function_names_reach_its_locals(server, smollm2):
    def probe():
        with smollm2.trace(PROMPT, remote=True) as tracer:
            top = smollm2.output.logits[0, -1].argmax().item()
        return top, tracer

    top, tracer = probe()
    assert smollm2.tokenizer.decode(top) == " Paris"
    assert tracer.result.logits.shape == (1, 10, 49152)
