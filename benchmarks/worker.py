"""One benchmark process: raw Hugging Face (plain hooks) and one library, timed side by side.

Run as ``python worker.py lenslab|nnsight SMOLLM2_DIR``; it reads JSON commands on stdin
(``{"case": name, "reps": n}``) and answers each with a JSON line: the raw and library timings
of that case, interleaved rep by rep, and a correctness check (the library's values against the
raw hooks' values). nnsight runs in its own virtual environment and process, since it patches
torch when imported; lenslab and its tests never import it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers as tf
from torch import nn

LIBRARY = sys.argv[1]
if LIBRARY == "lenslab":
    from lenslab import LanguageModel, NNsight
else:
    import warnings

    warnings.filterwarnings("ignore", message=".*deprecated")  # 0.8.1 on its own API
    from nnsight import LanguageModel, NNsight

torch.set_num_threads(2)
torch.manual_seed(0)
PROMPT = "The Eiffel Tower is located in the city of"
PROMPTS = [
    PROMPT,
    "When John and Mary went to the shops,",
    "I think that you are",
    "Hello",
    "Once upon a time there was",
    "The capital of Italy is",
    "One two three",
    "Yes",
]

# -- models ------------------------------------------------------------------------------------

no_compute = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)]).eval()
no_compute_lib = NNsight(no_compute)
x = torch.randn(1, 4)

tokenizer = tf.AutoTokenizer.from_pretrained(sys.argv[2])
tokenizer.padding_side = "left"
gpt2 = tf.GPT2LMHeadModel(
    tf.GPT2Config(n_embd=64, n_layer=4, n_head=4, vocab_size=len(tokenizer))
).eval()
gpt2_lib = LanguageModel(gpt2, tokenizer=tokenizer)
smol = tf.AutoModelForCausalLM.from_pretrained(sys.argv[2]).eval()
smol_lib = LanguageModel(smol, tokenizer=tokenizer)
steering = torch.randn(576) * 0.5


def encode(text: str | list[str]) -> dict:
    """What raw code does with a prompt before its forward (the libraries take text too)."""
    inputs = dict(tokenizer(text, return_tensors="pt", padding=True))
    if isinstance(text, list):  # positions as if each prompt ran alone
        inputs["position_ids"] = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return inputs


def capture(modules: list[nn.Module], edit: Callable | None = None) -> tuple[list, list]:
    """Plain forward hooks that keep (and optionally edit) each module's output."""
    kept: list = []

    def hook(module, args, output):
        output = edit(output) if edit else output
        kept.append(output)
        return output if edit else None

    return kept, [m.register_forward_hook(hook) for m in modules]


def raw_forward(model, inputs, modules, edit=None):
    kept, handles = capture(modules, edit)
    try:
        with torch.inference_mode():
            out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    finally:
        for h in handles:
            h.remove()
    return kept, out


# -- cases: (raw, library) pairs returning comparable values -------------------------------------


def no_compute_one():
    return raw_forward(no_compute, x, [no_compute[29]])[0]


def no_compute_one_lib():
    with torch.inference_mode(), no_compute_lib.trace(x):
        out = no_compute_lib[29].output.save()
    return [out]


def no_compute_all():
    return raw_forward(no_compute, x, list(no_compute))[0]


def no_compute_all_lib():
    outs = []  # made outside the block: nnsight 0.8 drops lists created inside it
    with torch.inference_mode(), no_compute_lib.trace(x):
        for i in range(30):
            outs.append(no_compute_lib[i].output.save())
    return outs


def gpt2_one():
    return raw_forward(gpt2, encode(PROMPT), [gpt2.transformer.h[2]])[0]


def gpt2_one_lib():
    with torch.inference_mode(), gpt2_lib.trace(PROMPT):
        out = gpt2_lib.transformer.h[2].output.save()
    return [out]


def smol_one():
    return raw_forward(smol, encode(PROMPT), [smol.model.layers[15]])[0]


def smol_one_lib():
    with torch.inference_mode(), smol_lib.trace(PROMPT):
        out = smol_lib.model.layers[15].output.save()
    return [out]


def smol_all():
    return raw_forward(smol, encode(PROMPT), list(smol.model.layers))[0]


def smol_all_lib():
    outs = []
    with torch.inference_mode(), smol_lib.trace(PROMPT):
        for i in range(30):
            outs.append(smol_lib.model.layers[i].output.save())
    return outs


def _zero_last(output):
    output[:, -1] = 0
    return output


def smol_edit():
    return [raw_forward(smol, encode(PROMPT), [smol.model.layers[10].mlp], _zero_last)[1].logits]


def smol_edit_lib():
    with torch.inference_mode(), smol_lib.trace(PROMPT):
        smol_lib.model.layers[10].mlp.output[:, -1] = 0
        logits = smol_lib.output.logits.save()
    return [logits]


def smol_skip():
    """Raw: the MLP's forward replaced by hand (an instance ``forward``), so it never runs."""
    mlp = smol.model.layers[10].mlp
    previous = mlp.__dict__.get("forward")  # nnsight keeps a wrapper there
    mlp.forward = torch.zeros_like
    try:
        with torch.inference_mode():
            return [smol(**encode(PROMPT)).logits]
    finally:
        if previous is None:
            del mlp.forward
        else:
            mlp.forward = previous


def smol_skip_lib():
    layer = smol_lib.model.layers[10]
    with torch.inference_mode(), smol_lib.trace(PROMPT):
        layer.mlp.skip(torch.zeros_like(layer.post_attention_layernorm.output))
        logits = smol_lib.output.logits.save()
    return [logits]


def smol_source():
    """Raw: the attention's mix of values before its projection, caught at o_proj's input."""
    kept: list = []
    projection = smol.model.layers[10].self_attn.o_proj
    handle = projection.register_forward_pre_hook(lambda m, args: kept.append(args[0]))
    try:
        with torch.inference_mode():
            smol(**encode(PROMPT))
    finally:
        handle.remove()
    return kept


def smol_source_lib():
    attn = smol_lib.model.layers[10].self_attn
    with torch.inference_mode(), smol_lib.trace(PROMPT):
        # nnsight 0.8's name for the call; lenslab accepts it beside the documented _0.
        mixed = attn.source.attention_interface_1.output[0].save()
    return [mixed.flatten(2)]  # (batch, seq, heads, head_dim), as o_proj takes it


def smol_batch8():
    return raw_forward(smol, encode(PROMPTS), [smol.model.layers[15]])[0]


def smol_batch8_lib():
    with torch.inference_mode(), smol_lib.trace(PROMPTS):
        out = smol_lib.model.layers[15].output.save()
    return [out]


def smol_invokes8():
    return raw_forward(smol, encode(PROMPTS), [smol.model.layers[15]])[0]


def smol_invokes8_lib():
    outs = []
    with torch.inference_mode(), smol_lib.trace() as tracer:
        for prompt in PROMPTS:
            with tracer.invoke(prompt):
                outs.append(smol_lib.model.layers[15].output.save())
    return [torch.cat(outs)]


def _steer(output):
    return output + steering


def smol_generate():
    handle = smol.model.layers[10].register_forward_hook(lambda m, a, o: _steer(o))
    try:
        with torch.inference_mode():
            out = smol.generate(**encode(PROMPT), max_new_tokens=20, do_sample=False)
    finally:
        handle.remove()
    return [out]


def smol_generate_lib():
    out = []  # nnsight 0.8 keeps values only in containers made outside the block
    with (
        torch.inference_mode(),
        smol_lib.generate(PROMPT, max_new_tokens=20, do_sample=False) as tracer,
    ):
        for _ in tracer.iter[:20]:  # bounded: nnsight skips code after an open-ended loop
            smol_lib.model.layers[10].output[:] += steering
        out.append(smol_lib.generator.output.save())
    return out


CASES = {
    name: (globals()[name], globals()[name + "_lib"])
    for name in (
        "no_compute_one",
        "no_compute_all",
        "gpt2_one",
        "smol_one",
        "smol_all",
        "smol_edit",
        "smol_skip",
        "smol_source",
        "smol_batch8",
        "smol_invokes8",
        "smol_generate",
    )
}


def check(raw_values: list, lib_values: list, name: str) -> float:
    """Largest absolute difference between the library's values and the raw hooks' values."""
    if name == "smol_invokes8":  # compare the last real tokens: the padding differs per row
        raw_values, lib_values = [raw_values[0][:, -1]], [lib_values[0][:, -1]]
    worst = 0.0
    for raw, lib in zip(raw_values, lib_values):
        raw, lib = torch.as_tensor(raw), torch.as_tensor(lib)
        if raw.shape != lib.shape:
            return float("inf")
        worst = max(worst, float((raw.float() - lib.float()).abs().max()))
    return worst


def peak_rss_mb(fn: Callable[[], object]) -> float:
    """Peak resident memory while ``fn`` runs, above what was resident before (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
    before = _status("VmRSS")
    fn()
    return (_status("VmHWM") - before) / 1024


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        raw, lib = CASES[command["case"]]
        if "memory_of" in command:  # a fresh process: nothing cached by earlier cases
            smol_one()  # page the memory-mapped weights in first: they are not the case's memory
            fn = raw if command["memory_of"] == "raw" else lib
            print(json.dumps({"mb": peak_rss_mb(fn)}), flush=True)
            continue
        for _ in range(3):  # warm up both
            raw(), lib()
        raw_times, lib_times = [], []
        pair = [(raw, raw_times), (lib, lib_times)]
        for _ in range(command["reps"]):
            for fn, times in pair:
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            pair.reverse()  # neither side always runs right after the other
        answer = {"raw": raw_times, "lib": lib_times, "diff": check(raw(), lib(), command["case"])}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
