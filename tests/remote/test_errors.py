"""Clear errors: authentication, unknown models, versions, and the user's own exceptions."""

from __future__ import annotations

import shutil

import httpx
import pytest

from lenslab import InputError, LanguageModel, ModulePathError
from lenslab.remote import (
    CONFIG,
    RemoteAuthError,
    RemoteModelError,
)
from lenslab.remote.protocol import pack


def test_a_wrong_key_is_an_authentication_error(server, tiny_local):
    with CONFIG.use(api_key="not-a-key"), pytest.raises(RemoteAuthError, match="rejected"):
        with tiny_local.trace("hello", remote=True):
            tiny_local.output.save()


def test_no_key_says_how_to_set_one(server, tiny_local, monkeypatch):
    monkeypatch.delenv("LENSLAB_API_KEY", raising=False)
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    with CONFIG.use(api_key=None), pytest.raises(RemoteAuthError, match="set_default_api_key"):
        with tiny_local.trace("hello", remote=True):
            tiny_local.output.save()


def test_the_key_can_come_from_ndif_api_key(server, tiny_local, monkeypatch):
    monkeypatch.delenv("LENSLAB_API_KEY", raising=False)
    monkeypatch.setenv("NDIF_API_KEY", server.key)
    with CONFIG.use(api_key=None):
        with tiny_local.trace("hello", remote=True):
            out = tiny_local.model.layers[0].output.save()
    assert out.shape[0] == 1


def test_an_unknown_model_lists_the_hosted_ones(server, tiny_path, tmp_path):
    other = tmp_path / "not-hosted"
    shutil.copytree(tiny_path, other)
    model = LanguageModel(str(other))
    with pytest.raises(RemoteModelError, match=r"does not host 'not-hosted'.*smollm2.*tiny-llama"):
        with model.trace("hello", remote=True):
            model.output.save()


def test_a_wire_version_mismatch_names_both_versions(server):
    message = pack({"kind": "job"}, {}, version=99)
    response = httpx.post(
        f"{server.url}/v1/jobs",
        content=message,
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "version"
    assert "format 99" in body["message"] and "speaks 1" in body["message"]


def test_a_user_exception_is_reraised_with_its_line(server, tiny_local):
    with pytest.raises(IndexError, match="out of bounds") as caught:
        with tiny_local.trace("hello", remote=True):
            hidden = tiny_local.model.layers[0].output
            wrong = hidden[7, 0]  # noqa: F841 (the failing line)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "wrong = hidden[7, 0]" in notes and "test_errors.py, line" in notes


def test_lenslab_errors_keep_their_type(server, tiny_local):
    with pytest.raises(ModulePathError, match="has no module or attribute 'layer'"):
        with tiny_local.trace("hello", remote=True):
            tiny_local.model.layer[0].output.save()


def test_unsendable_values_are_named(server, tiny_local):
    def helper(x):
        return x

    with pytest.raises(InputError, match=r"'helper'.*function"):
        with tiny_local.trace("hello", remote=True):
            helper(tiny_local.output)


def test_code_without_source_is_refused(server, tiny_local):
    code = "with model.trace('hello', remote=True):\n    out = model.output.save()\n"
    with pytest.raises(Exception, match="needs the source"):
        exec(code, {"model": tiny_local})


def test_the_status_endpoints_need_the_owner_key(server):
    response = httpx.get(f"{server.url}/v1/jobs/nope", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    models = httpx.get(f"{server.url}/v1/models").json()["models"]
    assert {m["name"] for m in models} == {"smollm2", "tiny-llama"}
