"""Malformed requests get a 4xx with a message, never a 500: the cases found by hand, then a
bounded fuzzer (hypothesis) over raw bytes, documents with a field replaced, and block sources."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenslab.remote.protocol import pack

from .jobs import document, raw_message, submit

DEEP = 100_000


def refused(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["message"]


CASES = {
    "variables as a list": lambda: pack(document(variables=["a", "b"]), {}),
    "line as a string": lambda: pack(document(line="3"), {}),
    "returns holding a number": lambda: pack(document(returns=[1]), {}),
    "document nested 100,000 deep": lambda: raw_message(
        json.dumps(document(variables={}))[:-1] + ', "deep": ' + "[" * DEEP + "]" * DEEP + "}"
    ),
    "header nested 100,000 deep": lambda: raw_message(
        json.dumps(document()), ', "deep": ' + "[" * DEEP + "]" * DEEP
    ),
    "a 100,000-term expression": lambda: pack(
        document(source="with lenslab_remote_block():\n    x = " + "+".join(["1"] * DEEP) + "\n"),
        {},
    ),
    "a lone surrogate in the source": lambda: pack(
        document(source="with lenslab_remote_block():\n    x = '\ud800'\n"), {}
    ),
    "a lone surrogate in the model name": lambda: pack(document(model="tiny\udfff"), {}),
    "a lone surrogate in a returned name": lambda: pack(document(returns=["x\ud800"]), {}),
    "bytes that are not UTF-8": lambda: raw_message("{}").replace(b"{}", b"\xff\xfe"),
    "not a document": lambda: raw_message("[1, 2, 3]"),
    "empty": lambda: b"",
}


@pytest.mark.parametrize("case", CASES)
def test_each_malformed_request_found_by_hand_is_a_4xx(server, case):
    refused(submit(server, CASES[case]()))


def test_a_bad_wait_or_job_id_is_not_a_500(server):
    headers = {"Authorization": f"Bearer {server.key}"}
    for path in ("/v1/jobs/%ff%fe?wait=nan", "/v1/jobs/x?wait=-1e309", "/v1/jobs/x/result"):
        response = httpx.get(f"{server.url}{path}", headers=headers, timeout=30)
        assert response.status_code < 500, (path, response.status_code)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = sorted(document())
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=200)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_raw_bytes(server, data):
    refused(submit(server, data))


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON, drop=st.booleans())
def test_fuzz_one_field_replaced_or_dropped(server, field, value, drop):
    doc = document()
    if drop:
        del doc[field]
    else:
        doc[field] = value
    response = submit(server, pack(doc, {}))
    assert response.status_code == 202 or 400 <= response.status_code < 500, response.text[:300]
    assert response.status_code == 202 or response.json()["message"]


@FUZZ
@given(source=ANY_TEXT)
def test_fuzz_block_sources(server, source):
    text = json.dumps(document(source=source))  # lone surrogates travel as \\udXXX escapes
    refused(submit(server, raw_message(text)))
