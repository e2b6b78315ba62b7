"""Every reply is size-checked: printed output, failures and exception messages included. The
test server's result limit is MAX_RESULT_MB; 100,000 printed lines are about 11 MB."""

from __future__ import annotations

import pytest

from lenslab.remote.protocol import read_document

from .conftest import MAX_RESULT_MB
from .jobs import document, run

LIMIT = MAX_RESULT_MB * 1024 * 1024
PRINTS = "    for i in range(100_000):\n        print('line', i, 'x' * 100)\n"


def test_printed_output_is_cut_with_a_note(server, tiny_local, capsys):
    with tiny_local.trace("hello", remote=True):
        for i in range(100_000):
            print("line", i, "x" * 100)
        out = tiny_local.output.logits.save()
    printed = capsys.readouterr().out
    assert out.shape[0] == 1
    assert printed.startswith("line 0 xxx")
    assert "over this server's result limit" in printed
    assert len(printed.encode()) <= LIMIT


def test_a_failure_with_much_printed_output_is_cut_too(server, tiny_local, capsys):
    with pytest.raises(ValueError, match="after printing"):
        with tiny_local.trace("hello", remote=True):
            for i in range(100_000):
                print("line", i, "x" * 100)
            raise ValueError("after printing")
    printed = capsys.readouterr().out
    assert "over this server's result limit" in printed
    assert len(printed.encode()) <= LIMIT


@pytest.mark.parametrize(
    "body",
    [
        PRINTS,
        PRINTS + "    raise ValueError('after printing')\n",
        "    raise ValueError('y' * 20_000_000)\n",
        "    big = [1.5] * 3_000_000\n",
    ],
    ids=["prints", "prints then fails", "huge exception message", "huge bound value"],
)
def test_no_reply_is_over_the_limit(server, body):
    reply = run(server, document(source="with lenslab_remote_block():\n" + body, returns=["big"]))
    assert len(reply) <= LIMIT
    doc = read_document(reply)
    if "raise" in body or "big" in body:
        assert doc["kind"] == "error"
    assert "limit" in doc.get("message", "") + doc.get("stdout", "")
