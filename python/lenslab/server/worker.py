"""A model worker: one process per hosted model, running one job at a time.

The server talks to it over two pipes (frames of bytes, never pickles). Start-up: load the
model, warm it up (lazy imports and caches happen now, not inside a job), route the engine's
body compiler through the sandbox (``compiler.py``), take the pristine snapshot
(``integrity.py``), confine the process (``confine.py``), then report ready with the attribute
names the HTTP process refuses up front (``allowlist.static_refusals``). Per job: a small JSON
header and the job message in; an acknowledgement (so the server knows the job reached a live
worker), then a status and the reply out. A job that leaves the model different from the
pristine snapshot gets an error saying what changed, and this process exits after answering, so
the server starts a fresh one from the weights on disk before the next job.

Run by the server as ``python -m lenslab.server.worker --model SPEC --read-fd R --write-fd W``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from typing import Any

CHANGED_EXIT = 3
CPU_RECYCLE = 0.8  # restart (between jobs) once this share of the CPU budget is spent


def warm_up(model: Any) -> None:
    """One forward and a two-token generation, outside any job."""
    import torch

    module, tokenizer = model._module, model.tokenizer
    ids = tokenizer("hello", return_tensors="pt").to(model.device)
    with torch.no_grad():
        module(**ids)
        if hasattr(module, "generate"):
            module.generate(**ids, max_new_tokens=2, do_sample=False)


def module_members() -> set[str]:
    """Every name the sandbox's module proxies (``torch``, ``math``...) offer."""
    from .guards import module_proxy
    from .policy import ALLOWED_MODULES

    names: set[str] = set()
    for name in ALLOWED_MODULES:
        names.update(vars(module_proxy(name)))
        names.update(name.split("."))
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lenslab.server.worker")
    parser.add_argument("--model", required=True)
    parser.add_argument("--read-fd", type=int, required=True)
    parser.add_argument("--write-fd", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--scratch", required=True, help="the only directory it may write")
    parser.add_argument("--memory-bytes", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=24 * 3600)
    args = parser.parse_args(argv)
    sys.dont_write_bytecode = True

    import torch

    from ..models.language import LanguageModel
    from . import compiler
    from .allowlist import static_refusals
    from .confine import Budget, confine
    from .integrity import differences, snapshot
    from .pipe import PipeClosed, read_frame, write_frame
    from .policy import unguarded
    from .runner import run_job

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = LanguageModel(args.model, dispatch=True)
        model._hosted = True
        warm_up(model)
    except Exception as error:
        write_frame(
            args.write_fd, json.dumps({"error": f"{type(error).__name__}: {error}"}).encode()
        )
        return 1
    compiler.install()
    refused = static_refusals(model, module_members())
    pristine = snapshot(model)
    os.chdir(args.scratch)
    os.environ["TMPDIR"] = args.scratch
    budget = Budget(memory_bytes=args.memory_bytes, cpu_seconds=args.cpu_seconds)
    sandbox = confine(args.scratch, budget)
    if unguarded():
        print("[lenslab] WARNING: TEST MODE, remote blocks run WITHOUT the Python sandbox.",
              file=sys.stderr, flush=True)  # fmt: skip
    info = {
        "architecture": type(model._module).__name__,
        "layers": int(getattr(model.config, "num_hidden_layers", 0) or 0),
        "pid": os.getpid(),
        "sandbox": sandbox.as_info(),
        "refused": sorted(refused),
    }
    write_frame(args.write_fd, json.dumps({"ready": info}).encode())
    cpu_limit = sandbox.limits.get("CPU seconds", 0)
    while True:
        try:
            header = json.loads(read_frame(args.read_fd))
            message = read_frame(args.read_fd)
        except PipeClosed:
            return 0
        write_frame(args.write_fd, json.dumps({"accepted": True}).encode())
        max_result = int(header["max_result"])
        reply = run_job(model, message, header["id"], max_result, refused)
        for parameter in model._module.parameters():
            parameter.grad = None
        torch.set_grad_enabled(True)
        changed = differences(pristine, snapshot(model))
        if changed:
            reply = changed_reply(changed)
        used = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        worn = bool(cpu_limit) and used > CPU_RECYCLE * cpu_limit
        write_frame(args.write_fd, json.dumps({"exit": bool(changed) or worn}).encode())
        write_frame(args.write_fd, reply)
        if changed or worn:
            return CHANGED_EXIT


def changed_reply(changed: list[str]) -> bytes:
    from ..remote.protocol import pack

    return pack(
        {
            "kind": "error",
            "category": "code",
            "type": "SandboxError",
            "bases": ["PermissionError"],
            "message": (
                f"the block changed the hosted model ({'; '.join(changed)}), which remote code "
                "may not do; the server restarts the model from its weights on disk, so no "
                "later job sees the change. Edit values inside traces "
                "(module.output[...] = ...) instead."
            ),
            "line": None,
            "code": None,
            "stdout": "",
        },
        {},
    )


if __name__ == "__main__":
    sys.exit(main())
