"""Decoding reasons and the dead-letter record."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter

from shared import events
from shared.dlq import (
    MAX_HEADER_CHARS,
    MAX_HEADERS,
    MAX_KEY_BYTES,
    DeadLetterFailed,
    DeadLetters,
    Inbox,
    PoisonMessage,
    Record,
    bounded_letter,
    decode,
)
from shared.metrics import DEAD_LETTER_FAILURES
from shared.topics import RULES_EVENTS, TopicNames
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


def test_a_message_of_exactly_the_limit_is_decoded_and_one_byte_more_is_not() -> None:
    padded = VALID[:-1] + b" " * 10 + b"}"  # still valid JSON
    assert decode(events.RULE_EVENT, padded, max_bytes=len(padded)) is not None
    with pytest.raises(PoisonMessage) as caught:
        decode(events.RULE_EVENT, padded, max_bytes=len(padded) - 1)
    assert caught.value.reason == "oversized"


def hostile_record(size: int) -> Record:
    headers = {f"h{i}": "v" * 5000 for i in range(100)}
    return Record("t", 0, 7, b"k" * 5000, b"x" * size, headers)


def test_a_dead_letter_keeps_a_bounded_prefix_with_size_and_hash() -> None:
    record = hostile_record(3_000_000)
    letter = bounded_letter(record, service="s", reason="oversized", error="e" * 50_000,
                            original_bytes=1000)  # fmt: skip
    assert letter.original == b"x" * 1000
    assert letter.original_size == 3_000_000
    assert letter.original_sha256 == hashlib.sha256(record.value).hexdigest()
    assert letter.truncated
    assert len(letter.headers) == MAX_HEADERS
    assert all(len(v) <= MAX_HEADER_CHARS for v in letter.headers.values())
    assert letter.key is not None
    assert len(letter.key) == MAX_KEY_BYTES
    assert len(letter.error) <= 8000
    assert len(events.encode(letter)) < 100_000
    small = bounded_letter(Record("t", 0, 1, None, b"ab", {}), service="s", reason="r",
                           error="e", original_bytes=1000)  # fmt: skip
    assert (small.original, small.truncated) == (b"ab", False)


class FailingBroker:
    """Refuses the first ``failures`` publishes, then records what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[bytes] = []

    async def publish(self, body: bytes, topic: str, key: bytes | None = None) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.published.append(body)


async def test_a_failing_dead_letter_backs_off_doubling_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("shared.dlq.asyncio.sleep", sleep)
    broker = FailingBroker(failures=6)
    letters = DeadLetters(broker, TopicNames(), "svc", backoff_s=0.5, max_backoff_s=4.0)  # type: ignore[arg-type]
    before = DEAD_LETTER_FAILURES.labels("svc", "rules.events")._value.get()
    for _ in range(6):
        with pytest.raises(DeadLetterFailed):
            await letters.send(hostile_record(10), RULES_EVENTS, "invalid_json", "bad")
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # never a hot loop, capped
    assert DEAD_LETTER_FAILURES.labels("svc", "rules.events")._value.get() == before + 6
    await letters.send(hostile_record(10), RULES_EVENTS, "invalid_json", "bad")
    assert len(broker.published) == 1
    assert letters.consecutive_failures == 0  # a success resets the back-off


async def test_a_letter_that_would_still_be_too_large_keeps_only_size_and_hash() -> None:
    broker = FailingBroker(failures=0)
    letters = DeadLetters(broker, TopicNames(), "svc", max_bytes=20_000,  # type: ignore[arg-type]
                          original_bytes=16_384)  # fmt: skip
    record = Record("t", 0, 1, b"k", "界".encode() * 100_000, {"h": "界" * 1000})
    await letters.send(record, RULES_EVENTS, "oversized", "界" * 8000)
    (body,) = broker.published
    assert len(body) <= 20_000
    letter = events.DeadLetter.model_validate_json(body)
    assert letter.original == b""
    assert letter.original_size == len(record.value)
    assert letter.original_sha256 == hashlib.sha256(record.value).hexdigest()


def test_the_back_off_starts_at_zero_and_doubles_to_the_defaults() -> None:
    letters = DeadLetters(FailingBroker(0), TopicNames(), "svc")  # type: ignore[arg-type]
    pauses = []
    for failures in range(10):
        letters.consecutive_failures = failures
        pauses.append(letters.next_backoff_s())
    assert pauses == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


async def test_a_shrunk_letter_keeps_500_characters_of_error_and_no_headers() -> None:
    broker = FailingBroker(failures=0)
    letters = DeadLetters(broker, TopicNames(), "svc", max_bytes=20_000)  # type: ignore[arg-type]
    await letters.send(hostile_record(30_000), RULES_EVENTS, "oversized", "e" * 8000)
    letter = events.DeadLetter.model_validate_json(broker.published[0])
    assert len(letter.error) == 500
    assert letter.headers == {}


def test_a_letter_may_keep_no_body_at_all() -> None:
    letter = bounded_letter(hostile_record(10), service="s", reason="r", error="e",
                            original_bytes=0)  # fmt: skip
    assert letter.original == b""
    assert letter.original_size == 10
    assert len(letter.headers) == 32  # the documented bound


def consumer_record(value: bytes, key: bytes = b"k", offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic="rules.events", partition=0, offset=offset, key=key, value=value,
                           headers=())  # fmt: skip


def reject_key(record: Record, event: object) -> None:
    if record.key == b"bad":
        raise PoisonMessage("key_mismatch", "not the rule's key")


def broken_check(record: Record, event: object) -> None:
    raise RuntimeError("a bug in a check")


async def test_an_inbox_opens_valid_records_and_dead_letters_the_rest_with_their_reason() -> None:
    broker = FailingBroker(failures=0)
    letters = DeadLetters(broker, TopicNames(), "svc")  # type: ignore[arg-type]
    inbox = Inbox(RULES_EVENTS, events.RULE_EVENT, letters, max_bytes=10_000,
                  checks=[reject_key])  # fmt: skip
    batch = (
        consumer_record(VALID, offset=0),
        consumer_record(b"{", offset=1),
        consumer_record(VALID, key=b"bad", offset=2),
        consumer_record(VALID, offset=3),
    )
    opened = await inbox.open_batch(batch)
    assert [record.offset for record, _ in opened] == [0, 3]
    assert all(isinstance(event, events.RuleUpsert) for _, event in opened)
    reasons = [events.DeadLetter.model_validate_json(b).reason for b in broker.published]
    assert reasons == ["invalid_json", "key_mismatch"]
    single = await inbox.open_batch(consumer_record(VALID, offset=9))  # one record, no tuple
    assert [record.offset for record, _ in single] == [9]
    buggy = Inbox(RULES_EVENTS, events.RULE_EVENT, letters, max_bytes=10_000,
                  checks=[broken_check])  # fmt: skip
    assert await buggy.open(Record.from_consumer_record(consumer_record(VALID))) is None
    assert events.DeadLetter.model_validate_json(broker.published[-1]).reason == "undecodable"


async def test_a_letter_under_the_limit_keeps_its_body_and_bounded_reason() -> None:
    broker = FailingBroker(failures=0)
    letters = DeadLetters(broker, TopicNames(), "svc", max_bytes=100_000)  # type: ignore[arg-type]
    await letters.send(Record("t", 0, 1, b"k", b"body", {"h": "v"}), RULES_EVENTS, "r" * 300, "e")
    letter = events.DeadLetter.model_validate_json(broker.published[0])
    assert (letter.original, letter.headers) == (b"body", {"h": "v"})
    assert letter.reason == "r" * 200
    assert MAX_HEADER_CHARS == 1024  # the documented bounds
    assert MAX_KEY_BYTES == 1024


def test_an_invalid_literal_outside_kind_is_an_invalid_payload() -> None:
    job = events.ExamJob(tenant="acme", dataset="x.csv").model_dump(mode="json")
    job["dataset_format"] = "xml"
    with pytest.raises(PoisonMessage) as caught:
        decode(TypeAdapter(events.ExamJob), json.dumps(job).encode(), max_bytes=10_000)
    assert caught.value.reason == "invalid_payload"
    job["dataset_format"], job["kind"] = "csv", "exam.nope"
    with pytest.raises(PoisonMessage) as caught:
        decode(TypeAdapter(events.ExamJob), json.dumps(job).encode(), max_bytes=10_000)
    assert caught.value.reason == "unknown_kind"


async def test_a_letter_of_exactly_the_limit_is_sent_whole() -> None:
    record = Record("t", 0, 1, b"k", b"x" * 3000, {"h": "v"})
    size = len(events.encode(bounded_letter(record, service="svc", reason="r", error="e",
                                            original_bytes=16_384)))  # fmt: skip
    broker = FailingBroker(failures=0)
    letters = DeadLetters(broker, TopicNames(), "svc", max_bytes=size)  # type: ignore[arg-type]
    await letters.send(record, RULES_EVENTS, "r", "e")
    assert events.DeadLetter.model_validate_json(broker.published[0]).original == record.value


async def test_by_default_a_letter_keeps_16_kib_of_the_body() -> None:
    broker = FailingBroker(failures=0)
    letters = DeadLetters(broker, TopicNames(), "svc")  # type: ignore[arg-type]
    await letters.send(Record("t", 0, 1, None, b"y" * 20_000, {}), RULES_EVENTS, "r", "e" * 9000)
    letter = events.DeadLetter.model_validate_json(broker.published[0])
    assert letter.original == b"y" * 16_384
    assert len(letter.error) == 8000


def test_a_lone_surrogate_anywhere_is_an_invalid_payload() -> None:
    body = VALID.replace(b'"text":"', b'"text":"\\ud800', 1)
    assert b"\\ud800" in body
    with pytest.raises(PoisonMessage) as caught:
        decode(events.RULE_EVENT, body, max_bytes=10_000)
    assert caught.value.reason == "invalid_payload"
    assert "surrogate" in caught.value.detail
