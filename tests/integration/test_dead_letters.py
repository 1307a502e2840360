"""Bad messages land in the dead-letter topic with their reason; valid ones still flow."""

from __future__ import annotations

import hashlib

from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.testing.topics import TopicReader
from shared.topics import CHAT_REQUESTS, RULES_EVENTS, RULES_INDEXED
from tests.samples import sample_rule

BAD = {
    b"\xff\xfe not json": "invalid_json",
    b"[1, 2]": "invalid_payload",
    b'{"v": 99, "kind": "rule.upsert"}': "unknown_version",
    b'{"v": 1, "kind": "rule.explode"}': "unknown_kind",
    b'{"v": 1, "kind": "rule.upsert", "rule": {"tenant": "acme"}}': "invalid_payload",
    b"x" * 100_000: "oversized",
    # malformed jurisdiction trees: a node without its parent, global as a node
    b'{"v": 1, "kind": "jurisdictions.tree", "tenant": "acme", "version": 1,'
    b' "nodes": [{"path": "CN/x"}]}': "invalid_payload",
    b'{"v": 1, "kind": "jurisdictions.tree", "tenant": "acme", "version": 1,'
    b' "nodes": [{"path": "global"}]}': "invalid_payload",
}


def dead_lettered(service: str, topic: str, reason: str) -> float:
    labels = {"service": service, "topic": topic, "reason": reason}
    return REGISTRY.get_sample_value("alignstream_messages_dead_lettered_total", labels) or 0.0


async def test_bad_rule_events_go_to_the_dlq(
    ingest: IngestService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    before = {reason: dead_lettered("ingest", "rules.events", reason) for reason in BAD.values()}
    topic = reader.name(RULES_EVENTS)
    good = events.RuleUpsert(rule=sample_rule())
    for i, payload in enumerate(BAD):
        await client_broker.publish(payload, topic, key=b"bad-%d" % i)
        if i == 2:  # valid traffic in between is unaffected
            await client_broker.publish(events.encode(good), topic, key=good.key.encode())

    letters = [
        events.DeadLetter.model_validate_json(r.value)
        for r in await reader.read(RULES_EVENTS, dlq=True, count=len(BAD))
    ]
    by_hash = {hashlib.sha256(payload).hexdigest(): payload for payload in BAD}
    assert {by_hash[letter.original_sha256 or ""]: letter.reason for letter in letters} == BAD
    for letter in letters:  # bounded: a prefix of the body, with its size and hash
        payload = by_hash[letter.original_sha256 or ""]
        assert letter.original == payload[: ingest.settings.dead_letter_original_bytes]
        assert letter.original_size == len(payload)
        assert letter.truncated == (len(payload) > ingest.settings.dead_letter_original_bytes)
    assert all(letter.service == "ingest" and letter.source_topic == topic for letter in letters)
    assert all(letter.error for letter in letters)
    assert sorted(letter.key or b"" for letter in letters) == sorted(
        b"bad-%d" % i for i in range(len(BAD))
    )
    (confirmation,) = await reader.read(RULES_INDEXED, count=1)
    assert events.RuleIndexed.model_validate_json(confirmation.value).rule_id == good.rule.rule_id
    for reason in set(BAD.values()):
        expected = before[reason] + sum(1 for r in BAD.values() if r == reason)
        assert dead_lettered("ingest", "rules.events", reason) == expected


async def test_wrong_model_on_chat_topic_goes_to_its_dlq(
    retrieval: RetrievalService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    wrong = events.encode(events.RuleUpsert(rule=sample_rule()))
    await client_broker.publish(wrong, reader.name(CHAT_REQUESTS), key=b"x")
    (record,) = await reader.read(CHAT_REQUESTS, dlq=True, count=1)
    letter = events.DeadLetter.model_validate_json(record.value)
    assert (letter.service, letter.reason, letter.original) == ("retrieval", "unknown_kind", wrong)
