"""Signed rule events on the real broker: with a key configured, only signed events change the
memory; unsigned, forged and re-keyed events go to the dead-letter topic with their reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker
from pydantic import SecretStr

from services.ingest.app import IngestService
from services.ingest.rebuild import rebuild
from services.ingest.settings import IngestSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.signing import RecordSigner
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS, RULES_INDEXED
from tests.samples import sample_rule

SECRET = SecretStr("test-signing-secret")


@pytest.fixture
async def signed_ingest(
    ingest_settings: IngestSettings, use_embedder: UniversalSentenceEncoder, redis_client: object
) -> AsyncIterator[IngestService]:
    kafka = ingest_settings.kafka.model_copy(update={"rule_signing_key": SECRET})
    settings = ingest_settings.model_copy(update={"kafka": kafka})
    async with IngestService(settings, embedder=use_embedder) as service:
        yield service


async def test_only_signed_rule_events_change_the_memory(
    signed_ingest: IngestService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    topic = reader.name(RULES_EVENTS)
    unsigned = events.RuleUpsert(rule=sample_rule(rule_id="unsigned"))
    await client_broker.publish(events.encode(unsigned), topic, key=unsigned.key.encode())
    forged = events.RuleUpsert(rule=sample_rule(rule_id="forged"))
    value, key = events.encode(forged), forged.key.encode()
    guessed = _text(RecordSigner(SecretStr("guess")).headers(topic, key, value))
    await client_broker.publish(value, topic, key=key, headers=guessed)
    # A validly signed event replayed under another rule's key.
    real = events.RuleUpsert(rule=sample_rule(rule_id="real"))
    value, key = events.encode(real), real.key.encode()
    signed = _text(RecordSigner(SECRET).headers(topic, key, value))
    await client_broker.publish(value, topic, key=b"acme:other", headers=signed)

    signed_settings = signed_ingest.settings.kafka
    async with AlignstreamClient(signed_settings) as client:
        (confirmation,) = await client.publish_rules([real], wait=True, timeout_s=30)
    assert confirmation.outcome is events.IndexOutcome.APPLIED

    letters = [
        events.DeadLetter.model_validate_json(r.value)
        for r in await reader.read(RULES_EVENTS, dlq=True, count=3)
    ]
    assert [letter.reason for letter in letters] == ["unsigned", "bad_signature", "bad_signature"]
    indexed = await reader.read(RULES_INDEXED, count=1)
    assert [events.RuleIndexed.model_validate_json(r.value).rule_id for r in indexed] == ["real"]

    # A rebuild from the log applies the same rule: the rejected events are in the log too.
    report = await rebuild(signed_settings, signed_ingest.settings.redis, signed_ingest.embedder,
                           drop=True)  # fmt: skip
    assert (report.events, report.invalid, report.applied) == (4, 3, 1)


async def test_a_rule_event_under_another_rules_key_is_dead_lettered(
    ingest: IngestService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    event = events.RuleUpsert(rule=sample_rule(rule_id="r1"))
    await client_broker.publish(events.encode(event), reader.name(RULES_EVENTS), key=b"acme:r2")
    (record,) = await reader.read(RULES_EVENTS, dlq=True, count=1)
    assert events.DeadLetter.model_validate_json(record.value).reason == "key_mismatch"


def _text(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}
