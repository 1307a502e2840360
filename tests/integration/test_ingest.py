"""Ingest on the real broker and Redis: confirmations, versions, deletes, replays."""

from __future__ import annotations

import numpy as np
from faststream.kafka import KafkaBroker

from services.ingest.app import IngestService
from shared import events
from shared.memory.query import RuleFilter
from shared.memory.search import RuleSearcher
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS, RULES_INDEXED
from tests.samples import sample_rule


async def publish(broker: KafkaBroker, reader: TopicReader, *batch: events.Event) -> None:
    for event in batch:
        key = getattr(event, "key", None)
        await broker.publish(
            events.encode(event), reader.name(RULES_EVENTS), key=key.encode() if key else None
        )


async def confirmations(reader: TopicReader, count: int) -> list[events.RuleIndexed]:
    records = await reader.read(RULES_INDEXED, count=count)
    return [events.RuleIndexed.model_validate_json(r.value) for r in records]


async def search_texts(ingest: IngestService, query: str, tenant: str = "acme") -> list[str]:
    assert ingest.ingestor is not None
    writer = ingest.ingestor.writer
    searcher = RuleSearcher(writer.client, writer.schema, ef_runtime=100)
    vector = (await ingest.embedder.embed([query]))[0].astype(np.float32).tobytes()
    return [hit.text for hit in await searcher.search(vector, RuleFilter(tenant=tenant), k=10)]


async def test_upsert_update_delete(
    ingest: IngestService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    v1 = sample_rule(version=1, text="Refunds are allowed within 30 days.")
    v2 = sample_rule(version=2, text="Refunds are allowed within 14 days.")
    await publish(client_broker, reader, events.RuleUpsert(rule=v1))
    (first,) = await confirmations(reader, 1)
    assert (first.version, first.outcome) == (1, events.IndexOutcome.APPLIED)
    assert first.latency_ms > 0
    assert await search_texts(ingest, "refund window") == [v1.text]

    await publish(client_broker, reader, events.RuleUpsert(rule=v2))
    assert (await confirmations(reader, 2))[1].outcome is events.IndexOutcome.APPLIED
    assert await search_texts(ingest, "refund window") == [v2.text]

    await publish(
        client_broker, reader, events.RuleDelete(tenant="acme", rule_id=v1.rule_id, version=3)
    )
    deleted = (await confirmations(reader, 3))[2]
    assert (deleted.op, deleted.outcome) == ("delete", events.IndexOutcome.APPLIED)
    assert await search_texts(ingest, "refund window") == []


async def test_out_of_order_and_replay_change_nothing(
    ingest: IngestService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    newer = events.RuleUpsert(rule=sample_rule(version=5, text="Version five text."))
    older = events.RuleUpsert(rule=sample_rule(version=4, text="Version four text."))
    await publish(client_broker, reader, newer, older, newer)  # late older + a redelivery

    # The late older version is stale; the redelivery is a copy of the event that applied
    # version 5, confirmed applied whether it came in the same batch or a later one.
    outcomes = [c.outcome for c in await confirmations(reader, 3)]
    assert outcomes == [
        events.IndexOutcome.APPLIED,
        events.IndexOutcome.STALE,
        events.IndexOutcome.APPLIED,
    ]
    assert await search_texts(ingest, "version text") == ["Version five text."]


async def test_delete_is_not_undone_by_an_older_upsert(
    ingest: IngestService, client_broker: KafkaBroker, reader: TopicReader
) -> None:
    await publish(
        client_broker,
        reader,
        events.RuleDelete(tenant="acme", rule_id="privacy-1", version=9),
        events.RuleUpsert(rule=sample_rule(version=8)),
    )
    outcomes = [c.outcome for c in await confirmations(reader, 2)]
    assert outcomes == [events.IndexOutcome.APPLIED, events.IndexOutcome.STALE]
    assert await search_texts(ingest, "customer data") == []
