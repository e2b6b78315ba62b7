"""nnsight's configuration lines run unchanged: ``CONFIG.API.HOST`` / ``APIKEY`` send a real
remote job to the test server, ``CONFIG.APP.REMOTE_LOGGING`` is the status display; the rest
are accepted, an unknown name is an error naming the known ones."""

from __future__ import annotations

import warnings

import pytest
import torch

from lenslab import LensError, LensWarning
from lenslab.remote import CONFIG


@pytest.fixture
def restored():
    """CONFIG's process defaults and nnsight settings as they were before the test."""
    before = CONFIG._default, dict(CONFIG.APP._values), dict(CONFIG.API._values)
    try:
        yield CONFIG
    finally:
        CONFIG._default = before[0]
        for section, values in ((CONFIG.APP, before[1]), (CONFIG.API, before[2])):
            section._values.clear()
            section._values.update(values)


def test_api_host_and_key_reach_a_real_remote_job(request, tiny_local, restored):
    server = request.getfixturevalue("server")  # not a parameter: no scoped test settings
    restored.API.HOST = server.url
    restored.API.APIKEY = server.key
    restored.APP.REMOTE_LOGGING = False
    assert (server.url, server.key) == (restored.API.HOST, restored.API.APIKEY)
    assert restored.settings.status is False and restored.APP.REMOTE_LOGGING is False
    with tiny_local.trace("hello", remote=True):
        remote = tiny_local.model.layers[0].output.save()
    with tiny_local.trace("hello"):
        local = tiny_local.model.layers[0].output.save()
    torch.testing.assert_close(remote, local)


def test_app_settings_are_accepted_and_unknown_names_refused(restored):
    restored.APP.PYMOUNT = False  # lenslab mounts nothing: .save() works on any object anyway
    restored.APP.DEBUG = True
    assert restored.APP.PYMOUNT is False and restored.APP.DEBUG is True
    with pytest.raises(LensError, match=r"no setting 'MOUNT'.*PYMOUNT") as caught:
        restored.APP.MOUNT = True
    assert isinstance(caught.value, AttributeError)
    with pytest.raises(AttributeError, match="HOST, APIKEY, COMPRESS"):
        _ = restored.API.KEY
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        restored.APP.CROSS_INVOKER = True  # what lenslab does: no warning
        restored.APP.CROSS_INVOKER = False
    assert [w.category for w in seen] == [LensWarning]
    assert "cannot be isolated" in str(seen[0].message)
