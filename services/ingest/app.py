"""The ingest service: consumes rule events in batches, embeds, writes Redis, confirms."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram

from services.ingest.memory import RuleEvent, RuleWriter, identity, plan
from services.ingest.settings import IngestSettings
from shared import events
from shared.dlq import Inbox
from shared.embedders import Embedder, make_embedder
from shared.kafka import consumer_options
from shared.memory.index import ensure_index, wait_for_index
from shared.memory.schema import RuleSchema
from shared.metrics import HANDLER_SECONDS, LATENCY_BUCKETS_S
from shared.redis import make_redis
from shared.service import Service
from shared.topics import RULES_EVENTS, RULES_INDEXED

RULES_APPLIED = Counter(
    "alignstream_rules_indexed_total",
    "Rule events processed by ingest, by operation and outcome (applied or stale).",
    ["op", "outcome"],
)
EMBED_BATCH = Histogram(
    "alignstream_embed_batch_size",
    "Texts per embedding call in ingest.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
EMBED_SECONDS = Histogram(
    "alignstream_embed_seconds", "Time of one embedding call.", buckets=LATENCY_BUCKETS_S
)
EVENT_TO_SERVABLE = Histogram(
    "alignstream_rule_event_to_servable_seconds",
    "From a rule event's creation to the rule being searchable.",
    buckets=LATENCY_BUCKETS_S,
)


class IngestService(Service):
    name = "ingest"

    def __init__(self, settings: IngestSettings, embedder: Embedder | None = None) -> None:
        super().__init__(settings)
        self.settings: IngestSettings = settings
        self.embedder = embedder or make_embedder(settings.embedder)
        self.inbox: Inbox[RuleEvent] = Inbox(
            RULES_EVENTS, events.RULE_EVENT, self.dead_letters, max_bytes=settings.max_message_bytes
        )
        self.redis: aioredis.Redis | None = None
        self.writer: RuleWriter | None = None
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
        await self.embedder.start()
        self.redis = make_redis(self.settings.redis)
        schema = RuleSchema(self.settings.redis.key_prefix, self.embedder.dim, self.embedder.name)
        await ensure_index(self.redis, schema)
        await wait_for_index(self.redis, schema)
        self.writer = RuleWriter(self.redis, schema)

    async def on_stop(self) -> None:
        await self.embedder.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def on_rule_events(self, message: KafkaMessage) -> None:
        records = message.raw_message
        with HANDLER_SECONDS.labels(self.name, RULES_EVENTS.name).time():
            opened = await self.inbox.open_batch(
                records if isinstance(records, tuple) else (records,)
            )
            if opened:
                try:
                    await self.apply([event for _, event in opened])
                except Exception:
                    # Redis or the embedder failed: let the batch be redelivered, after a pause
                    # so an outage is not a busy loop.
                    await asyncio.sleep(self.settings.retry_backoff_s)
                    raise

    async def apply(self, batch: list[RuleEvent]) -> list[events.RuleIndexed]:
        """Embed and write one batch; publish and return one confirmation per event."""
        assert self.writer is not None, "service not started"
        applied = await self.writer.applied_versions([identity(e)[:2] for e in batch])
        chosen = plan(batch, applied)
        vectors: dict[tuple[str, str], bytes] = {}
        upserts = chosen.upserts
        if upserts:
            EMBED_BATCH.observe(len(upserts))
            with EMBED_SECONDS.time():
                matrix = await self.embedder.embed([u.rule.text for u in upserts])
            vectors = {
                (u.rule.tenant, u.rule.rule_id): row.tobytes()
                for u, row in zip(upserts, matrix, strict=True)
            }
        written = dict(
            zip(
                chosen.writes,
                await self.writer.write(list(chosen.writes.values()), vectors),
                strict=True,
            )
        )
        confirmations = [
            self._confirm(event, outcome, written)
            for event, outcome in zip(batch, chosen.outcomes, strict=True)
        ]
        await asyncio.gather(
            *(
                self.broker.publish(
                    events.encode(c),
                    self.topics(RULES_INDEXED),
                    key=events.rule_key(c.tenant, c.rule_id).encode(),
                )
                for c in confirmations
            )
        )
        return confirmations

    def _confirm(
        self,
        event: RuleEvent,
        expected: events.IndexOutcome,
        written: dict[tuple[str, str], bool],
    ) -> events.RuleIndexed:
        tenant, rule_id, version = identity(event)
        applied = expected is events.IndexOutcome.APPLIED and written.get((tenant, rule_id), False)
        outcome = events.IndexOutcome.APPLIED if applied else events.IndexOutcome.STALE
        op = "upsert" if isinstance(event, events.RuleUpsert) else "delete"
        confirmation = events.RuleIndexed(
            tenant=tenant,
            rule_id=rule_id,
            version=version,
            op=op,
            outcome=outcome,
            source_event_id=event.event_id,
            event_created_at=event.created_at,
        )
        RULES_APPLIED.labels(op, outcome.value).inc()
        if applied:
            EVENT_TO_SERVABLE.observe(confirmation.latency_ms / 1000.0)
        return confirmation
