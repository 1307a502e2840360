"""Rebuild the Redis rule memory by replaying the compacted rule topic.

Reads every partition from the beginning (``shared/replay.py``: no consumer group, nothing
committed, up to where the log ended when the replay began), applying events in batches through
the same ingest path. Because writes are idempotent by version, replaying into a non-empty
memory, or while ingest runs, is safe. Each record passes the checks ingest applies (signature,
decoding, the key is the rule's), through the same code.

``--drop`` deletes the rule documents but keeps the version ledger, and the replay then runs in
restore mode: only the applied version of each rule (and not a deleted one) is written again, so
an older record that compaction or a replay left as the newest for its key never comes back.
Change sets are replayed too (a closed set's stages are refused, a promoted set's promote is
``stale``); ``--drop`` leaves staged documents alone, as it leaves the ledger. A rebuild never
republishes what a promote made live: ingest did when it applied the promote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.ingest.changesets import ChangeSetApplier
from services.ingest.ingestor import RuleIngestor
from services.ingest.records import rule_records
from shared.dlq import PoisonMessage, Record
from shared.embedders import Embedder
from shared.events import ChangeSetEvent, IndexOutcome, RulesTopicEvent
from shared.memory.changesets import ChangeSetStore, PromoteResult
from shared.memory.history import RuleHistory, history_entries
from shared.memory.index import open_indexes
from shared.memory.schema import RuleSchema
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import RuleWriter
from shared.redis import as_text, make_redis
from shared.replay import TopicReplay
from shared.settings import KafkaSettings, RedisSettings
from shared.signing import RecordSigner
from shared.subscription import Subscription
from shared.topics import RULES_EVENTS

REPLAY_MAX_BYTES = 1 << 24
"""Largest rule record a rebuild reads (ingest's own limit may have been lower or higher)."""


def check_rule_record(
    record: Record, rules: Subscription[RulesTopicEvent]
) -> RulesTopicEvent | None:
    """The rule event (or jurisdiction tree) of a record, or None when ingest would have
    dead-lettered it: unsigned or forged (with signing on), undecodable, or under another
    rule's key (``rules``: ingest's own subscription, the same checks)."""
    try:
        return rules.read(record, max_bytes=REPLAY_MAX_BYTES)
    except PoisonMessage:
        return None


@dataclass
class RebuildReport:
    events: int = 0
    applied: int = 0
    stale: int = 0
    invalid: int = 0
    dropped_keys: int = 0


async def drop_memory(redis_settings: RedisSettings, schema: RuleSchema) -> int:
    """Delete every live rule document (the indexes stay and empty; the version ledger and
    staged documents stay)."""
    client = make_redis(redis_settings)
    dropped = 0
    try:
        async for key in client.scan_iter(match=schema.docs_pattern, count=1000):
            if not schema.is_candidate_key(as_text(key)):
                dropped += await client.delete(key)
    finally:
        await client.aclose()
    return dropped


async def rebuild(
    kafka: KafkaSettings,
    redis_settings: RedisSettings,
    embedder: Embedder,
    *,
    drop: bool = False,
    batch_size: int = 256,
    idle_ms: int = 300,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Replay the rule topic into Redis; ``progress(done, total)`` is called per batch."""
    client = make_redis(redis_settings)
    try:
        await client.ping()  # a wrong REDIS_URL fails now, not after the model has loaded
        await embedder.start()
        schema = RuleSchema(redis_settings.key_prefix, embedder.dim, embedder.name)
        report = RebuildReport()
        rules = rule_records(kafka)
        if drop:
            report.dropped_keys = await drop_memory(redis_settings, schema)
        trees = JurisdictionStore(client, redis_settings.key_prefix)
        ingestor = RuleIngestor(RuleWriter(await open_indexes(client, schema)), embedder, trees)
        history = RuleHistory(client, redis_settings.key_prefix)
        store = ChangeSetStore.on(ingestor.writer.indexes)
        change_sets = ChangeSetApplier(store, embedder)

        async def settle(result: PromoteResult) -> None:
            # What a replayed promote made live is on the log already: ingest republished it.
            await store.settle(result.tenant, result.name)

        signer = RecordSigner.for_rules(kafka)
        async with TopicReplay(kafka, kafka.topics(RULES_EVENTS)) as replay:
            async for records in replay.batches(max_records=batch_size, idle_ms=idle_ms):
                opened: list[tuple[Record, RulesTopicEvent]] = []
                for record in records:
                    report.events += 1
                    event = check_rule_record(record, rules)
                    if event is None:
                        report.invalid += 1
                    else:
                        opened.append((record, event))
                if opened:
                    # The versions the log still holds (history entries already there stay).
                    await history.record(history_entries(opened, signer))
                    memory = [e for _, e in opened if not isinstance(e, ChangeSetEvent)]
                    sets = [e for _, e in opened if isinstance(e, ChangeSetEvent)]
                    prepared = await ingestor.prepare(memory, restore=drop)
                    outcomes = await ingestor.run(prepared)
                    outcomes += [o for o, _ in await change_sets.apply(sets, settle)]
                    # An event whose version it applied before is unchanged, not applied again.
                    again = len(prepared.plan.copies)
                    report.applied += outcomes.count(IndexOutcome.APPLIED) - again
                    report.stale += outcomes.count(IndexOutcome.STALE) + again
                if progress is not None:
                    progress(report.events, max(replay.total, report.events))
    finally:
        await client.aclose()
    return report
