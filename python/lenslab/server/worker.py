"""A model worker: one process per hosted model, running one job at a time.

The server talks to it over two pipes (frames of bytes, never pickles): a ready report after
loading, then per job a small JSON header and the job message, answered by the reply message.
A job that runs past the time limit is ended by killing this process; a job that leaves the
hosted model changed (weights, dtype, modes, hooks, config, tokenizer) gets an error and this
process exits after answering, so the server starts a fresh one and no later job sees it.

Run by the server as ``python -m lenslab.server.worker --model SPEC --read-fd R --write-fd W``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

CHANGED_EXIT = 3


def fingerprint(model: Any) -> dict[str, Any]:
    """Everything a job must leave as it found it, cheaply comparable."""
    import torch
    from torch import nn

    module = model._module

    def tensor_state(t: torch.Tensor) -> tuple[Any, ...]:
        return (id(t), t._version, t.dtype, str(t.device), t.requires_grad, t.data_ptr())

    tok = model.tokenizer
    hooks = nn.modules.module
    return {
        "parameters": [(n, tensor_state(p)) for n, p in module.named_parameters()],
        "buffers": [(n, tensor_state(b)) for n, b in module.named_buffers()],
        "modules": [
            (
                n,
                m.training,
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._backward_hooks),
                len(m._backward_pre_hooks),
            )
            for n, m in module.named_modules()
        ],
        "config": module.config.to_json_string(),
        "generation": getattr(module, "generation_config", None)
        and module.generation_config.to_json_string(),
        "attention": getattr(module.config, "_attn_implementation", None),
        "tokenizer": tok is not None
        and (len(tok), tok.padding_side, tok.truncation_side, repr(tok.special_tokens_map)),
        "classes": [sorted(vars(cls)) for cls in (torch.Tensor, nn.Parameter, nn.Module)],
        "global hooks": [
            len(hooks._global_forward_hooks),
            len(hooks._global_forward_pre_hooks),
            len(hooks._global_backward_hooks),
        ],
        "grad mode": torch.is_grad_enabled(),
    }


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [key for key in before if before[key] != after[key]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lenslab.server.worker")
    parser.add_argument("--model", required=True)
    parser.add_argument("--read-fd", type=int, required=True)
    parser.add_argument("--write-fd", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from ..models.language import LanguageModel
    from .pipe import PipeClosed, read_frame, write_frame
    from .runner import run_job

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = LanguageModel(args.model, dispatch=True)
    except Exception as error:
        write_frame(
            args.write_fd, json.dumps({"error": f"{type(error).__name__}: {error}"}).encode()
        )
        return 1
    model._hosted = True
    info = {
        "architecture": type(model._module).__name__,
        "layers": int(getattr(model.config, "num_hidden_layers", 0) or 0),
        "pid": os.getpid(),
    }
    write_frame(args.write_fd, json.dumps({"ready": info}).encode())
    while True:
        try:
            header = json.loads(read_frame(args.read_fd))
            message = read_frame(args.read_fd)
        except PipeClosed:
            return 0
        before = fingerprint(model)
        reply = run_job(model, message, header["id"], int(header["max_result"]))
        for parameter in model._module.parameters():
            parameter.grad = None
        torch.set_grad_enabled(True)
        differences = changed(before, fingerprint(model))
        if differences:
            reply = _changed_reply(differences)
        write_frame(args.write_fd, json.dumps({"exit": bool(differences)}).encode())
        write_frame(args.write_fd, reply)
        if differences:
            return CHANGED_EXIT


def _changed_reply(differences: list[str]) -> bytes:
    from ..remote.protocol import pack

    return pack(
        {
            "kind": "error",
            "category": "code",
            "type": "SandboxError",
            "bases": ["PermissionError"],
            "message": (
                f"the block changed the hosted model ({', '.join(differences)}), which remote "
                "code may not do; the server restores the model, so no later job sees the "
                "change. Edit values inside traces (module.output[...] = ...) instead."
            ),
            "line": None,
            "code": None,
            "stdout": "",
        },
        {},
    )


if __name__ == "__main__":
    sys.exit(main())
