"""The ingest service: consumes rule events in batches, embeds, writes Redis, confirms."""

from __future__ import annotations

import asyncio

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram

from services.ingest.ingestor import EMBED_BATCH, EMBED_SECONDS, RuleIngestor
from services.ingest.settings import IngestSettings
from shared import events
from shared.dlq import Inbox
from shared.embedders import Embedder, make_embedder
from shared.guards import rule_key_guard
from shared.kafka import consumer_options
from shared.memory.service import RuleMemoryService
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import RuleWriter
from shared.metrics import HANDLER_SECONDS, LATENCY_BUCKETS_S
from shared.signing import RuleSigner
from shared.topics import RULES_EVENTS, RULES_INDEXED

RULES_APPLIED = Counter(
    "alignstream_rules_indexed_total",
    "Rule events processed by ingest, by operation and outcome (applied or stale).",
    ["op", "outcome"],
)
EVENT_TO_SERVABLE = Histogram(
    "alignstream_rule_event_to_servable_seconds",
    "From a rule event's creation to the rule being searchable.",
    buckets=LATENCY_BUCKETS_S,
)


class IngestService(RuleMemoryService):
    name = "ingest"
    metrics = (RULES_APPLIED, EVENT_TO_SERVABLE, EMBED_BATCH, EMBED_SECONDS)

    def __init__(self, settings: IngestSettings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder or make_embedder(settings.embedder))
        self.settings: IngestSettings = settings
        signer = RuleSigner.from_settings(settings.kafka)
        self.inbox: Inbox[events.RulesTopicEvent] = self.make_inbox(
            RULES_EVENTS, events.RULES_TOPIC_EVENT, signer.check, checks=[rule_key_guard]
        )
        self.ingestor: RuleIngestor | None = None
        self.broker.subscriber(
            self.topics(RULES_EVENTS),
            batch=True,
            max_records=settings.batch_max,
            batch_timeout_ms=settings.batch_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            **consumer_options(settings.kafka, group_id=settings.group_id),
        )(self.on_rule_events)

    @classmethod
    def from_env(cls) -> IngestService:
        return cls(IngestSettings())

    async def on_start(self) -> None:
        await super().on_start()
        assert self.indexes is not None
        trees = JurisdictionStore(self.indexes.client, self.settings.redis.key_prefix)
        self.ingestor = RuleIngestor(RuleWriter(self.indexes), self.embedder, trees)

    async def on_rule_events(self, message: KafkaMessage) -> None:
        with HANDLER_SECONDS.labels(self.name, RULES_EVENTS.name).time():
            batch = [event for _, event in await self.inbox.open_batch(message.raw_message)]
            if batch:
                try:
                    await self.apply(batch)
                except Exception:
                    # Redis or the embedder failed: let the batch be redelivered, after a pause
                    # so an outage is not a busy loop.
                    await asyncio.sleep(self.settings.retry_backoff_s)
                    raise

    async def apply(self, batch: list[events.RulesTopicEvent]) -> list[events.RuleIndexed]:
        """Embed and write one batch; publish and return one confirmation per event."""
        assert self.ingestor is not None, "service not started"
        outcomes = await self.ingestor.apply(batch)
        confirmations = [confirm(e, o) for e, o in zip(batch, outcomes, strict=True)]
        await self.publish_all(self.topics(RULES_INDEXED), confirmations)
        return confirmations


def confirm(event: events.RulesTopicEvent, outcome: events.IndexOutcome) -> events.RuleIndexed:
    tenant, rule_id, version = event.target
    confirmation = events.RuleIndexed(
        tenant=tenant,
        rule_id=rule_id,
        version=version,
        op=event.op,
        outcome=outcome,
        source_event_id=event.event_id,
        event_created_at=event.created_at,
    )
    RULES_APPLIED.labels(event.op, outcome.value).inc()
    if outcome is events.IndexOutcome.APPLIED:
        EVENT_TO_SERVABLE.observe(confirmation.latency_ms / 1000.0)
    return confirmation
