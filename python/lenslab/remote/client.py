"""The HTTP side of a remote job: submit it, show its status while waiting, fetch the result.

A job is submitted with one POST; the client then long-polls its status (the server answers
when the status changes, or after a few seconds) and fetches the result once it is done. So a
client that disappears mid-job costs the server nothing but a result nobody fetches (dropped
after a while), and the status (queued / running / done) can be shown as it changes.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from .config import RemoteSettings
from .errors import (
    RemoteAuthError,
    RemoteCodeError,
    RemoteConnectionError,
    RemoteError,
    RemoteJobError,
    RemoteModelError,
    RemoteVersionError,
)

POLL_SECONDS = 5.0


class Client:
    """Talks to one lenslab server with the settings in effect when it was made."""

    def __init__(self, settings: RemoteSettings, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self.host = settings.resolved_host()
        self._transport = transport

    def run(self, message: bytes, what: str) -> bytes:
        """Submit ``message`` (a job), wait for it, and return the result message."""
        key = self.settings.resolved_key()
        if not key:
            raise RemoteAuthError(
                "remote=True needs an API key for the lenslab server at "
                f"{self.host}: call lenslab.CONFIG.set_default_api_key('...') or set "
                "LENSLAB_API_KEY (NDIF_API_KEY also works)."
            )
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"}
        timeout = httpx.Timeout(10.0, read=POLL_SECONDS + 30.0)
        with httpx.Client(
            base_url=self.host, headers=headers, timeout=timeout, transport=self._transport
        ) as http:
            job = self._json(self._call(http, "POST", "/v1/jobs", content=message))
            status = _Status(self.settings.status, what, job["id"])
            try:
                deadline = time.monotonic() + self.settings.wait
                while job["status"] not in ("done", "failed"):
                    status.show(job)
                    if time.monotonic() > deadline:
                        raise RemoteJobError(
                            f"job {job['id']} on {self.host} did not finish within "
                            f"{self.settings.wait:.0f} s; it may still be queued. Raise the wait "
                            "with lenslab.CONFIG.use(wait=...)."
                        )
                    job = self._json(
                        self._call(
                            http, "GET", f"/v1/jobs/{job['id']}", params={"wait": POLL_SECONDS}
                        )
                    )
                status.show(job)
                return self._call(http, "GET", f"/v1/jobs/{job['id']}/result").content
            finally:
                status.close()

    def _call(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise RemoteConnectionError(
                f"cannot reach the lenslab server at {self.host} ({type(error).__name__}: "
                f"{error}). Start one with `lenslab serve --model smollm2 --api-keys FILE`, or "
                "point lenslab at yours with lenslab.CONFIG.set_default_host('http://host:port') "
                "or LENSLAB_HOST."
            ) from error
        if response.status_code >= 400:
            raise self._failure(response)
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise RemoteError(
                f"the server at {self.host} answered {response.status_code} with something that "
                "is not JSON; is it a lenslab server?"
            ) from None
        return data

    def _failure(self, response: httpx.Response) -> RemoteError:
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500]}
        message = str(body.get("message") or body)
        kind = body.get("error")
        if response.status_code == 401 or kind == "auth":
            return RemoteAuthError(
                f"the lenslab server at {self.host} rejected the API key: {message} Set the key "
                "your server's admin gave you with lenslab.CONFIG.set_default_api_key('...') or "
                "LENSLAB_API_KEY."
            )
        if kind == "model":
            return RemoteModelError(message)
        if kind == "version":
            return RemoteVersionError(message)
        if kind == "code":
            return RemoteCodeError(message)
        return RemoteJobError(
            f"the lenslab server at {self.host} answered {response.status_code}: {message}"
        )


class _Status:
    """The job's status on one line (a widget in notebooks), updated as it changes."""

    def __init__(self, show: bool, what: str, job_id: str) -> None:
        self._bar: Any = None
        self._last = ""
        self._label = f"[lenslab] {what} job {job_id[:8]}"
        self._started = time.monotonic()
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=None, bar_format="{desc}", desc=self._label, leave=False)

    def show(self, job: dict[str, Any]) -> None:
        state = job["status"]
        if state == "queued":
            ahead = job.get("position", 0)
            text = f"queued ({ahead} ahead)" if ahead else "queued"
        elif state == "running":
            text = "running"
        else:
            text = f"{state} in {time.monotonic() - self._started:.1f} s"
        if self._bar is not None and text != self._last:
            self._bar.set_description_str(f"{self._label}: {text}")
        self._last = text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

