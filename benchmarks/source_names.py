"""Checks that lenslab numbers ``.source`` points as the installed nnsight 0.8 does.

Run in the nnsight environment (benchmarks/run does, before timing): for the forwards of every
architecture the tests cover, nnsight's own rewrite lists its operation names, and lenslab's
``Site.nnsight08`` names must be the same list, in the same order. Prints the one name per
forward where the two namings part (the documented ``attention_interface_0`` is the call in
lenslab, the assignment that picks the function in nnsight 0.8).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import transformers.models.gemma.modeling_gemma as gemma
import transformers.models.gpt2.modeling_gpt2 as gpt2
import transformers.models.gpt_neox.modeling_gpt_neox as neox
import transformers.models.llama.modeling_llama as llama
import transformers.models.mistral.modeling_mistral as mistral
import transformers.models.qwen2.modeling_qwen2 as qwen2
from nnsight.intervention import source as nnsight_source

from lenslab.engine import callsites

MODULES = (llama, mistral, qwen2, gemma, gpt2, neox)
FORWARDS = [
    *(
        cls.forward
        for module in MODULES
        for cls in vars(module).values()
        if isinstance(cls, type) and cls.__module__ == module.__name__ and "forward" in vars(cls)
    ),
    *(module.eager_attention_forward for module in MODULES),
    llama.apply_rotary_pos_emb,
]

failures = 0
for forward in FORWARDS:
    try:
        raw = callsites.raw_function(forward)
        rewritten = callsites.rewrite(raw)
    except callsites.NoSourceError:
        continue
    ours = [site.nnsight08 for site in rewritten.sites if site.nnsight08 is not None]
    theirs = list(nnsight_source.compiled(raw).names)
    reachable = callsites.reachable(rewritten.sites)
    shadowed = [
        s.nnsight08 for s in rewritten.sites if s.nnsight08 and reachable[s.nnsight08] is not s
    ]
    if ours != theirs:
        failures += 1
        print(f"DIFFERENT {raw.__qualname__}\n  lenslab {ours}\n  nnsight {theirs}")
    else:
        print(
            f"same      {raw.__qualname__} ({len(ours)} points)"
            + (f"; 0.8 names the documented ones shadow: {shadowed}" if shadowed else "")
        )
if failures:
    sys.exit(f"[lenslab] {failures} forwards are numbered unlike nnsight 0.8")
print(f"[lenslab] .source names match nnsight 0.8 on {len(FORWARDS)} forwards")
