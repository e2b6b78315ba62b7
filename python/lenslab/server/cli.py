"""``lenslab serve``: host models for remote execution.

    lenslab serve --model smollm2 [--model PATH | NAME=PATH ...] --host 127.0.0.1 --port 8000
                  --api-keys keys.txt [--time-limit 120] [--max-result-mb 256]
                  [--max-memory-gb N]

The key file holds one API key per line (``#`` starts a comment); give each member their own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _keys(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise SystemExit(
            f"lenslab serve: no API key file at {path}; create it with one key per line."
        )
    keys = [line.split("#", 1)[0].strip() for line in file.read_text().splitlines()]
    keys = [key for key in keys if key]
    if not keys:
        raise SystemExit(f"lenslab serve: {path} holds no API keys; put one key per line.")
    return keys


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import Server, build_app
    from .hosts import Host, Limits
    from .policy import unguarded

    limits = Limits(
        time=args.time_limit,
        result_bytes=int(args.max_result_mb * 1024 * 1024),
        request_bytes=int(args.max_request_mb * 1024 * 1024),
        queue=args.max_queue,
        memory_bytes=int(args.max_memory_gb * 1024**3),
    )
    hosts = [Host(spec, limits, threads=args.threads) for spec in args.model]
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise SystemExit(f"lenslab serve: two models share a name ({names}); name them NAME=PATH.")
    server = Server(hosts, _keys(args.api_keys), limits)
    if unguarded():
        print(
            "[lenslab] WARNING: TEST MODE (LENSLAB_TEST_UNGUARDED_JOBS): remote blocks run "
            "WITHOUT the Python sandbox. Never use this outside lenslab's own tests.",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"[lenslab] serving {', '.join(names)} on http://{args.host}:{args.port} "
        f"(time limit {args.time_limit:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(build_app(server), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lenslab", description="lenslab command line")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="host models for remote=True traces")
    run.add_argument(
        "--model",
        action="append",
        required=True,
        help="smollm2, a checkpoint directory, or NAME=PATH; repeat for more",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--api-keys", required=True, help="file with one API key per line")
    run.add_argument("--time-limit", type=float, default=120.0, help="seconds per job")
    run.add_argument("--max-result-mb", type=float, default=256.0)
    run.add_argument("--max-request-mb", type=float, default=256.0)
    run.add_argument("--max-queue", type=int, default=1000, help="waiting jobs per model")
    run.add_argument(
        "--max-memory-gb",
        type=float,
        default=0.0,
        help="address space per model worker (default: what the model takes, plus 8 GiB)",
    )
    run.add_argument("--threads", type=int, default=0, help="torch threads per worker")
    run.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
