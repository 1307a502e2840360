"""The ingest service: rule events in batches -> ``RuleIngestor`` (embed, write Redis) ->
one confirmation per event on ``rules.indexed``.

Two lanes feed the same ingestor: the rule log (``rules.events``, where bulk loads queue) and
the fast lane (``rules.live``, a copy of each small edit, read by a consumer group of its own).
A live edit is therefore never behind thousands of bulk events in a partition: it waits for the
embedding chunk in progress (and, for a rule that a batch in flight also writes, for that batch:
``RuleLocks``; a batch's old copy of the rule, which it does not write, holds nothing). Applying
an event twice, or out of log order, is harmless: every write is checked against the rule's
applied version (the copy that comes second is confirmed ``stale``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import Field, TypeAdapter

from services.ingest.audit_chainer import AuditChainer
from services.ingest.changesets import PROMOTES, ChangeSetApplier
from services.ingest.confirmations import EVENT_TO_SERVABLE, RULES_APPLIED, confirm
from services.ingest.ingestor import EMBED_BATCH, EMBED_SECONDS, RuleIngestor, Slot
from services.ingest.locks import RuleLocks
from services.ingest.records import rule_records
from services.ingest.settings import IngestSettings
from shared import events
from shared.embedders import Embedder, make_embedder
from shared.events import IndexOutcome, RuleEvent
from shared.memory.changesets import ChangeSetStore, PromoteResult
from shared.memory.history import RuleHistory, history_entries
from shared.memory.service import RuleMemoryService
from shared.memory.trees import JurisdictionStore
from shared.memory.watermark import MemoryWatermark, raw_watermark
from shared.memory.writer import RuleWriter, WriteResult
from shared.service import Delivery
from shared.signing import RecordSigner
from shared.subscription import Batch, Subscription
from shared.topics import AUDIT_ENTRIES, AUDIT_LOG, RULES_EVENTS, RULES_INDEXED, RULES_LIVE

APPLIED, STALE = IndexOutcome.APPLIED, IndexOutcome.STALE
AUDIT_RECORD: TypeAdapter[events.AuditRecord] = TypeAdapter(
    Annotated[events.AuditRecord, Field(discriminator="kind")]
)


class IngestService(RuleMemoryService):
    name = "ingest"
    settings_class = IngestSettings
    metrics = (RULES_APPLIED, EVENT_TO_SERVABLE, EMBED_BATCH, EMBED_SECONDS, PROMOTES)

    def __init__(self, settings: IngestSettings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder or make_embedder(settings.embedder),
                         memory_ready_timeout_s=settings.memory_ready_timeout_s)  # fmt: skip
        self.settings: IngestSettings = settings
        rule_events = rule_records(settings.kafka, max_records=settings.batch_max,
                                   batch_timeout_ms=settings.batch_wait_ms)  # fmt: skip
        live_events = rule_records(settings.kafka, topic=RULES_LIVE,
                                   max_records=settings.live_batch_max,
                                   batch_timeout_ms=settings.live_batch_wait_ms,
                                   group_id=f"{settings.group_id}-live")  # fmt: skip
        self.ingestor: RuleIngestor | None = None
        self._history: RuleHistory | None = None
        self._watermark: MemoryWatermark | None = None
        self.rule_signer = RecordSigner.for_rules(settings.kafka)
        self.rule_locks = RuleLocks()
        self.inbox = self.subscribe(rule_events, self.on_rule_events)
        self.live_inbox = self.subscribe(live_events, self.on_live_events)
        self.publishes(RULES_INDEXED)
        self.publishes(
            RULES_EVENTS,
            why="the versions a promoted change set made live, each "
            "under its rule's key (the log keeps every rule's live version)",
        )
        self.change_sets: ChangeSetApplier | None = None
        self.chainer: AuditChainer | None = None
        if settings.audit_chain:
            entries = Subscription(AUDIT_ENTRIES, AUDIT_RECORD, max_records=256)
            self.audit_inbox = self.subscribe(entries, self.on_audit_entries)
            self.publishes(AUDIT_LOG, why="each tenant's audit entries, hash-chained")

    async def on_start(self) -> None:
        await super().on_start()
        indexes = self.running_indexes()
        trees = JurisdictionStore(indexes.client, self.settings.redis.key_prefix)
        redis = self.settings.redis
        writer = RuleWriter(indexes, wait_replicas=redis.wait_replicas,
                            wait_timeout_s=redis.wait_timeout_s)  # fmt: skip
        self.ingestor = RuleIngestor(writer, self.embedder, trees)
        self.change_sets = ChangeSetApplier(ChangeSetStore.on(indexes), self.embedder)
        self._history = RuleHistory(indexes.client, self.settings.redis.key_prefix,
                                    max_versions=self.settings.history_max_versions)  # fmt: skip
        self._watermark = MemoryWatermark(indexes.client, self.settings.redis.key_prefix)
        if self.settings.audit_chain:
            self.chainer = AuditChainer(indexes.client, self.settings.redis.key_prefix,
                                        self._publish_link)  # fmt: skip

    @property
    def watermark(self) -> MemoryWatermark:
        assert self._watermark is not None, "service not started"
        return self._watermark

    @property
    def history(self) -> RuleHistory:
        assert self._history is not None, "service not started"
        return self._history

    async def on_rule_events(self, batch: Batch[events.RulesTopicEvent]) -> None:
        await self._apply_records(batch)
        # Past every record of the batch, dead-lettered ones included (they are done with).
        await self.watermark.advance(raw_watermark(batch.records))

    async def on_audit_entries(self, batch: Batch[events.AuditBatch]) -> None:
        assert self.chainer is not None, "service not started"
        for record, item in batch.opened:
            await self.chainer.chain_record(record, item)

    async def _publish_link(self, link: events.AuditLink) -> None:
        await asyncio.gather(*await self.enqueue_all(self.topics(AUDIT_LOG), [link]))

    async def on_live_events(self, batch: Batch[events.RulesTopicEvent]) -> None:
        await self._apply_records(batch)

    async def _apply_records(self, batch: Batch[events.RulesTopicEvent]) -> None:
        # Redis or the embedder failing raises: the batch is redelivered after the back-off.
        opened = batch.opened
        if opened:
            # Recorded first: a version applied is always in the history (a crash between the
            # two records it again on redelivery, which adds nothing).
            await self.history.record(history_entries(opened, self.rule_signer))
            await self.apply([event for _, event in opened])

    async def apply(self, batch: list[events.RulesTopicEvent]) -> list[events.RuleIndexed]:
        """Embed and write one batch; publish and return one confirmation per event. Rule
        events and trees go first, then the change sets' events (in their order)."""
        rules = [e for e in batch if not isinstance(e, events.ChangeSetEvent)]
        sets = [e for e in batch if isinstance(e, events.ChangeSetEvent)]
        done = (
            dict(zip(map(id, rules), await self._apply_rules(rules), strict=True)) if rules else {}
        )
        if sets:
            done |= dict(zip(map(id, sets), await self._apply_change_sets(sets), strict=True))
        return [done[id(e)] for e in batch]

    async def _apply_change_sets(
        self, batch: list[events.ChangeSetEvent]
    ) -> list[events.RuleIndexed]:
        assert self.change_sets is not None, "service not started"
        promoted: list[PromoteResult] = []

        async def later(result: PromoteResult) -> None:
            promoted.append(result)

        # Both lanes carry a set's events: the copy applied second waits until the first one's
        # confirmation is out (a client is never told ``stale`` before ``applied``).
        sets = {(e.tenant, events.changeset_key(e.tenant, e.name)) for e in batch}
        async with self.rule_locks.holding(sets):
            results = await self.change_sets.apply(batch, later)
            confirmations = [confirm(e, outcome, conflicts)
                             for e, (outcome, conflicts) in zip(batch, results, strict=True)
                             ]  # fmt: skip
            await self.publish_all(self.topics(RULES_INDEXED), confirmations)
        # After the confirmation: the set is servable once its script ran. A crash before this
        # leaves the batch uncommitted, and the promote's redelivery does it again.
        for result in promoted:
            await self._republish(result.changes)
            await self.change_sets.store.settle(result.tenant, result.name)
        return confirmations

    async def _republish(self, changes: Sequence[events.RuleUpsert | events.RuleDelete]) -> None:
        topic = self.topics(RULES_EVENTS)
        deliveries = []
        for change in changes:
            key, body = events.key_bytes(change.key), self.encode_bounded(change)
            signed = self.rule_signer.headers(topic, key or b"", body)
            headers = {name: value.decode() for name, value in signed} or None
            deliveries.append(await self.broker.publish(body, topic, key=key, headers=headers,
                                                        no_confirm=True))  # fmt: skip
        await asyncio.gather(*deliveries)

    async def _apply_rules(self, batch: list[events.MemoryEvent]) -> list[events.RuleIndexed]:
        assert self.ingestor is not None, "service not started"
        # Both lanes carry each edit, and the copy applied second is confirmed stale: never
        # before the first copy is confirmed applied (a waiting client would be told its fresh
        # edit was stale). A batch holds the rules it writes until its confirmations are out;
        # two copies that both plan to write a rule take turns (the second reads the first's
        # write). A rule the batch leaves alone (Redis has its version already) only waits for
        # a batch that holds it now: an edit on the fast lane is not held up by a bulk batch
        # that carries an old copy of it.
        prepared = await self.ingestor.prepare(batch)
        await self.rule_locks.wait_free(prepared.settled)
        topic = self.topics(RULES_INDEXED)
        async with self.rule_locks.holding(prepared.writing):
            # A written rule is confirmed as soon as its chunk lands, while the next chunk is
            # being embedded: the batch's end then waits for the last chunk's few confirmations
            # instead of sending all of them. The rest (stale copies, trees) follow the writes,
            # so no stale confirmation of a rule goes out before its applied one.
            confirmed: dict[int, events.RuleIndexed] = {}  # by the event object's id
            deliveries: list[Delivery] = []

            async def send(confirmations: dict[int, events.RuleIndexed]) -> None:
                confirmed.update(confirmations)
                deliveries.extend(await self.enqueue_all(topic, confirmations.values()))

            async def confirm_written(
                written: Sequence[RuleEvent], results: Mapping[Slot, WriteResult]
            ) -> None:
                await send({id(e): confirm(e, APPLIED if results[e.target.slot] else STALE,
                                           copy=results[e.target.slot] is WriteResult.ALREADY)
                            for e in written})  # fmt: skip

            outcomes = await self.ingestor.run(prepared, on_written=confirm_written)
            copies = prepared.plan.copies
            await send({id(e): confirm(e, o, copy=e.event_id in copies)
                        for e, o in zip(batch, outcomes, strict=True)
                        if id(e) not in confirmed})  # fmt: skip
            await asyncio.gather(*deliveries)
        return [confirmed[id(e)] for e in batch]
