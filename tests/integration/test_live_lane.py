"""The fast lane on the real broker and Redis: a small edit is servable while a bulk load is
still queued in the rule log, and the edit's second copy (from the log) changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.errors import NotConfirmed
from shared.testing.embedders import PacedEmbedder
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS, RULES_INDEXED, RULES_LIVE
from tests.samples import sample_rule

BULK = 1000
PACE_S = 0.004
"""Seconds per embedded text: the bulk load takes about BULK * PACE_S = 4 s to ingest."""


@pytest.fixture
async def slow_ingest(
    ingest_settings: IngestSettings, use_embedder: UniversalSentenceEncoder, redis_client: object
) -> AsyncIterator[IngestService]:
    embedder = PacedEmbedder(use_embedder, PACE_S)
    async with IngestService(ingest_settings, embedder=embedder) as service:
        yield service


def bulk_load() -> list[events.RulesTopicEvent]:
    return [
        events.RuleUpsert(rule=sample_rule(rule_id=f"bulk-{i}", text=f"Bulk rule number {i}."))
        for i in range(BULK)
    ]


async def applied_version(ingest: IngestService, rule_id: str) -> int:
    assert ingest.ingestor is not None
    versions = await ingest.ingestor.writer.applied_versions([("acme", rule_id)])
    return versions[("acme", rule_id)]


async def test_a_live_edit_is_servable_while_a_bulk_load_is_queued(
    slow_ingest: IngestService, reader: TopicReader
) -> None:
    kafka = slow_ingest.settings.kafka
    live = events.RuleUpsert(rule=sample_rule(rule_id="live", version=2))
    queued = events.RuleUpsert(rule=sample_rule(rule_id="queued", version=2))
    async with (
        AlignstreamClient(kafka) as client,
        AlignstreamClient(kafka, live_lane_max_events=0) as laneless,
    ):
        await client.publish_rules(bulk_load())  # a load: the log only
        await laneless.publish_rules([queued])  # an edit without the fast lane: behind the load
        (confirmed,) = await client.publish_rules([live], wait=True, timeout_s=3)
        assert confirmed.outcome is events.IndexOutcome.APPLIED
        # The edit without the fast lane, and the end of the load, are still queued.
        assert await applied_version(slow_ingest, "queued") == 0
        assert await applied_version(slow_ingest, f"bulk-{BULK - 1}") == 0
        with pytest.raises(NotConfirmed):
            await laneless.publish_rules([queued], wait=True, timeout_s=0.5)

    # Once the log is worked off: everything applied. The live edit's copy in the log changes
    # nothing and is confirmed applied too (that version is servable: a waiting client reading
    # either confirmation first is told the truth).
    records = await reader.read(RULES_INDEXED, count=BULK + 4, timeout_s=60)
    outcomes: dict[str, list[events.IndexOutcome]] = {}
    for record in records:
        confirmation = events.RuleIndexed.model_validate_json(record.value)
        outcomes.setdefault(confirmation.rule_id, []).append(confirmation.outcome)
    assert outcomes["live"] == [events.IndexOutcome.APPLIED, events.IndexOutcome.APPLIED]
    assert outcomes["queued"][0] is events.IndexOutcome.APPLIED
    assert len(outcomes) == BULK + 2
    assert await applied_version(slow_ingest, "live") == 2


async def test_the_fast_lane_carries_only_small_publishes_after_the_log(
    slow_ingest: IngestService, reader: TopicReader
) -> None:
    kafka = slow_ingest.settings.kafka
    edits = [events.RuleUpsert(rule=sample_rule(rule_id=f"edit-{i}")) for i in range(3)]
    async with AlignstreamClient(kafka, live_lane_max_events=3) as client:
        await client.publish_rules(edits, wait=True, timeout_s=30)
        await client.publish_rules(bulk_load()[:4])  # over the client's limit: the log only
    logged = await reader.read(RULES_EVENTS, count=7)
    fast = await reader.read(RULES_LIVE, count=3)
    assert sorted(r.key for r in fast) == sorted(e.key.encode() for e in edits)
    # Each copy on the fast lane was written after its original in the log was acknowledged.
    written = {r.key: r.timestamp for r in logged}
    assert all(r.timestamp >= written[r.key] for r in fast)
    with pytest.raises(AssertionError, match="got 3"):  # nothing of the load is there
        await reader.read(RULES_LIVE, count=4, timeout_s=1)


async def test_an_edit_on_both_lanes_is_confirmed_applied_to_the_waiting_client(
    ingest: IngestService,
) -> None:
    """Both copies arrive together on an idle ingest: the one confirmed first is the applied one
    (the two lanes never plan the same rule at once)."""
    async with AlignstreamClient(ingest.settings.kafka) as client:
        for version in range(1, 21):
            edit = events.RuleUpsert(rule=sample_rule(rule_id="edited", version=version))
            (confirmed,) = await client.publish_rules([edit], wait=True, timeout_s=10)
            assert confirmed.outcome is events.IndexOutcome.APPLIED, version


async def test_a_batch_confirms_each_chunk_as_it_lands(
    slow_ingest: IngestService, reader: TopicReader
) -> None:
    """The first chunk's confirmations are out while the batch's later chunks are still being
    embedded (they used to wait for the whole batch); each event is still confirmed once."""
    batch = bulk_load()[:256]
    first = asyncio.create_task(reader.read(RULES_INDEXED, count=1, timeout_s=30))
    confirmed = await slow_ingest.apply(list(batch))
    assert first.done(), "no confirmation was out before the batch's end"
    assert [c.outcome for c in confirmed] == [events.IndexOutcome.APPLIED] * len(batch)
    assert [c.rule_id for c in confirmed] == [e.target.rule_id for e in batch]
    records = await reader.read(RULES_INDEXED, count=len(batch))
    rule_ids = [events.RuleIndexed.model_validate_json(r.value).rule_id for r in records]
    assert sorted(rule_ids) == sorted(e.target.rule_id for e in batch)
    with pytest.raises(AssertionError, match=f"got {len(batch)}"):  # nothing twice
        await reader.read(RULES_INDEXED, count=len(batch) + 1, timeout_s=1)
