"""The lenslab server's HTTP API (Starlette, served by uvicorn).

    GET  /v1/health             status, versions, each model's state and queue (no key needed)
    GET  /v1/models             the hosted models (no key needed)
    POST /v1/jobs               submit a job message -> {"id", "status", "position"}
    GET  /v1/jobs/{id}?wait=S   its status; waits up to S seconds for a change (long poll)
    GET  /v1/jobs/{id}/result   the reply message, once done (then the job is forgotten)

Job routes need ``Authorization: Bearer KEY`` with a key from the server's key file; a job is
visible to the key that submitted it only. A job's code is checked against the sandbox rules
(``policy.py``) before it is queued, so a rejected block never reaches a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..remote.protocol import WIRE_VERSION, EnvelopeError, VersionMismatch, read_document
from .hosts import RESULT_TTL, Host, Job, Limits, QueueFull
from .policy import RemoteCodeRejected, check, explain, unguarded
from .schema import MalformedJob, validate

MAX_WAIT = 30.0


class Server:
    """The hosted models, the jobs in flight and the accepted keys."""

    def __init__(self, hosts: list[Host], keys: Iterable[str], limits: Limits) -> None:
        self.hosts = hosts
        self.limits = limits
        self.jobs: dict[str, Job] = {}
        self._keys = [_digest(k) for k in keys]

    def host_for(self, name: str) -> Host | None:
        for host in self.hosts:
            if name.lower() in host.aliases:
                return host
        return None

    def owner(self, request: Request) -> str | None:
        """The digest of the request's key if it is accepted, else None."""
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        key = key or request.headers.get("x-api-key", "")
        if not key:
            return None
        digest = _digest(key)
        accepted = False
        for known in self._keys:
            accepted |= hmac.compare_digest(known, digest)
        return digest if accepted else None

    def forget_old(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self.jobs.items()):
            if job.finished is not None and now - job.finished > RESULT_TTL:
                self.jobs.pop(job_id, None)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    # A lone surrogate the client sent may be quoted back: escape it rather than fail to encode.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": kind, "message": message, **extra}, status_code=status)


def build_app(server: Server) -> Starlette:
    """The ASGI app for ``server``; its lifespan starts and stops the model workers."""

    def hosted() -> list[str]:
        return [host.name for host in server.hosts]

    async def health(request: Request) -> Response:
        from .. import __version__

        for host in server.hosts:
            host.check_alive()
        models = {
            host.name: {
                "state": host.state,
                "queued": host.queued,
                "running": host.running is not None,
                **({"problem": host.problem} if host.problem else {}),
            }
            for host in server.hosts
        }
        return JSONResponse(
            {"status": "ok", "lenslab": __version__, "wire": WIRE_VERSION, "models": models}
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "models": [
                    {"name": h.name, "aliases": sorted(h.aliases), "state": h.state, **h.info}
                    for h in server.hosts
                ]
            }
        )

    async def submit(request: Request) -> Response:
        owner = server.owner(request)
        if owner is None:
            return _error(401, "auth", "missing or unknown API key.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > server.limits.request_bytes:
                return _error(
                    413,
                    "size",
                    "the job is over this server's limit of "
                    f"{server.limits.request_bytes / 1e6:.0f} MB; send smaller inputs.",
                )
        message = bytes(body)
        try:
            document = read_document(message)
            validate(document)
            model, source = document["model"], document["source"]
            filename, line = document["filename"], document["line"]
            provided = {*document["variables"], *document["model_names"]}
            modules = [n for n, v in document["variables"].items() if _is_module(v)]
        except VersionMismatch as mismatch:
            return _error(
                400,
                "version",
                f"the client speaks lenslab wire format {mismatch.theirs}, this server speaks "
                f"{WIRE_VERSION}; install the same lenslab version on both sides.",
            )
        except (EnvelopeError, MalformedJob) as error:
            return _error(400, "request", f"not a lenslab job message: {error}")
        except (RecursionError, ValueError, TypeError, KeyError) as error:
            return _error(400, "request", f"not a lenslab job message ({type(error).__name__})")
        host = server.host_for(model)
        if host is None:
            return _error(
                404,
                "model",
                f"this server does not host {model!r}; it hosts: {', '.join(hosted())}.",
                models=hosted(),
            )
        try:
            if not unguarded():
                check(source, filename, line, provided, modules, host.refused)
        except RemoteCodeRejected as rejected:
            return _error(400, "code", explain(rejected, source, filename, line))
        server.forget_old()
        job = Job(host.name, owner, message)
        try:
            host.submit(job)
        except QueueFull as full:
            return _error(503, "busy", f"{full}; try again later.")
        server.jobs[job.id] = job
        return JSONResponse(_status(server, job), status_code=202)

    def find(request: Request) -> Job | Response:
        owner = server.owner(request)
        if owner is None:
            return _error(401, "auth", "missing or unknown API key.")
        job = server.jobs.get(request.path_params["job"])
        if job is None or not hmac.compare_digest(job.owner, owner):
            return _error(404, "job", "no such job (finished results are kept for 10 minutes).")
        return job

    async def status(request: Request) -> Response:
        job = find(request)
        if isinstance(job, Response):
            return job
        try:
            wait = min(float(request.query_params.get("wait", 0)), MAX_WAIT)
        except ValueError:
            wait = 0.0
        seen = _status(server, job)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _status(server, job) == seen:
            if await request.is_disconnected():
                return Response(status_code=499)
            await asyncio.sleep(0.05)
        return JSONResponse(_status(server, job))

    async def result(request: Request) -> Response:
        job = find(request)
        if isinstance(job, Response):
            return job
        if job.reply is None:
            return _error(409, "pending", f"job {job.id} is {job.status}; wait for it to finish.")
        server.jobs.pop(job.id, None)
        return Response(job.reply, media_type="application/octet-stream")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for host in server.hosts:
            host.start()
        try:
            yield
        finally:
            for host in server.hosts:
                host.stop()

    return Starlette(
        routes=[
            Route("/v1/health", health),
            Route("/v1/models", models),
            Route("/v1/jobs", submit, methods=["POST"]),
            Route("/v1/jobs/{job}", status),
            Route("/v1/jobs/{job}/result", result),
        ],
        lifespan=lifespan,
    )


def _status(server: Server, job: Job) -> dict[str, Any]:
    host = server.host_for(job.model)
    position = host.position(job) if host is not None and job.status == "queued" else 0
    return {"id": job.id, "status": job.status, "position": position}


def _is_module(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["$module"]
