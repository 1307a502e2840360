"""Decoding reasons and the dead-letter record."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter

from shared import events
from shared.dlq import PoisonMessage, Record, decode
from tests.samples import sample_rule

VALID = events.encode(events.RuleUpsert(rule=sample_rule()))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b'"a string"', "invalid_payload"),
        (b'{"kind": "rule.upsert"}', "unknown_version"),
        (b'{"v": "1", "kind": "rule.upsert"}', "unknown_version"),
        (b'{"v": 1, "kind": "rule.nope"}', "unknown_kind"),
        (b'{"v": 1}', "unknown_kind"),
        (b'{"v": 1, "kind": "rule.upsert", "rule": {}}', "invalid_payload"),
        (VALID + b" " * 100, "oversized"),
    ],
)
def test_decode_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        decode(events.RULE_EVENT, payload, max_bytes=len(VALID) + 10)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_decode_valid() -> None:
    assert decode(events.RULE_EVENT, VALID, max_bytes=10_000) == events.RULE_EVENT.validate_json(
        VALID
    )


def test_wrong_model_on_a_single_model_topic_is_an_unknown_kind() -> None:
    with pytest.raises(PoisonMessage) as caught:
        decode(TypeAdapter(events.ChatRequest), VALID, max_bytes=10_000)
    assert caught.value.reason == "unknown_kind"


def test_record_keeps_headers_as_text() -> None:
    raw = SimpleNamespace(
        topic="t", partition=1, offset=5, key=b"k", value=b"v", headers=(("a", b"\xffb"),)
    )
    record = Record.from_consumer_record(raw)
    assert record == Record("t", 1, 5, b"k", b"v", {"a": "\ufffdb"})
