"""The comm protocol, on the examples that js/lab/test/protocol.test.ts checks too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lenslab.comms.protocol import (
    ProtocolError,
    build_error,
    build_reply,
    build_request,
    parse_reply,
    parse_request,
)

EXAMPLES = json.loads((Path(__file__).parent / "protocol_examples.json").read_text())


@pytest.mark.parametrize("message", EXAMPLES["valid_requests"])
def test_valid_requests_round_trip(message):
    parsed = parse_request(json.loads(json.dumps(message)))
    assert parsed == message
    assert build_request(message["id"], message["method"], **message["params"]) == message


@pytest.mark.parametrize("message", EXAMPLES["invalid_requests"])
def test_invalid_requests_are_refused_with_a_reason(message):
    with pytest.raises(ProtocolError) as error:
        parse_request(message)
    assert len(str(error.value)) > 10


@pytest.mark.parametrize("message", EXAMPLES["valid_replies"])
def test_valid_replies_round_trip(message):
    parsed = parse_reply(json.loads(json.dumps(message)))
    assert parsed == message
    rebuilt = (
        build_reply(message["id"], message["result"])
        if message["ok"]
        else build_error(message["id"], message["error"])
    )
    assert rebuilt == message


@pytest.mark.parametrize("message", EXAMPLES["invalid_replies"])
def test_invalid_replies_are_refused(message):
    with pytest.raises(ProtocolError):
        parse_reply(message)


def test_a_newer_front_end_is_told_to_reinstall():
    with pytest.raises(ProtocolError, match="Reinstall lenslab"):
        parse_request({"v": 2, "type": "request", "id": "x", "method": "hello"})
