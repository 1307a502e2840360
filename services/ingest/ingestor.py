"""Embed and write a batch of rule events: shared by the service and ``memory rebuild``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from prometheus_client import Histogram

from shared.embedders import Embedder
from shared.events import IndexOutcome, JurisdictionTree, RuleEvent, RulesTopicEvent, RuleUpsert
from shared.memory.schema import embedding_text
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import RuleWriter, plan
from shared.metrics import LATENCY_BUCKETS_S

EMBED_BATCH = Histogram(
    "alignstream_embed_batch_size",
    "Texts per embedding call in ingest.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
EMBED_SECONDS = Histogram(
    "alignstream_embed_seconds", "Time of one embedding call.", buckets=LATENCY_BUCKETS_S
)


Report = Callable[[Sequence[tuple[RulesTopicEvent, IndexOutcome]]], Awaitable[None]]
"""Hears outcomes as soon as they are known (``RuleIngestor.apply``)."""


class RuleIngestor:
    """Embeds upserts in chunks and writes each chunk while the next one is being embedded:
    the Redis work (HNSW insertion, in the Redis server) overlaps the embedding."""

    def __init__(
        self,
        writer: RuleWriter,
        embedder: Embedder,
        trees: JurisdictionStore,
        *,
        chunk_size: int = 64,
    ) -> None:
        self.writer = writer
        self.embedder = embedder
        self.trees = trees
        self.chunk_size = chunk_size

    async def apply(
        self, batch: list[RulesTopicEvent], *, restore: bool = False, report: Report | None = None
    ) -> list[IndexOutcome]:
        """Apply a batch in order; the outcome of each event (APPLIED only if it changed Redis).
        ``restore`` (a rebuild after ``--drop``): rewrite the documents of applied versions.
        Jurisdiction trees replace the tenant's tree when newer. ``report`` hears each event's
        outcome once, as soon as its rule is settled (``_Reporter``): a chunk's rules while the
        next chunk is being embedded (ingest confirms them then, not all after the batch)."""
        rules = [e for e in batch if not isinstance(e, JurisdictionTree)]
        outcomes = iter(await self._apply_rules(rules, restore, report) if rules else [])
        result = []
        for event in batch:
            if isinstance(event, JurisdictionTree):
                stored = await self.trees.put(event)
                outcome = IndexOutcome.APPLIED if stored else IndexOutcome.STALE
                if report is not None:
                    await report([(event, outcome)])
                result.append(outcome)
            else:
                result.append(next(outcomes))
        return result

    async def _apply_rules(
        self, batch: list[RuleEvent], restore: bool, report: Report | None
    ) -> list[IndexOutcome]:
        applied = await self.writer.applied_versions([e.target.slot for e in batch])
        chosen = plan(batch, applied, restore=restore)
        reporter = _Reporter(batch, report)
        await reporter.unwritten(chosen.writes)
        changed: set[tuple[str, str]] = set()
        deletes = [e for e in chosen.writes.values() if not isinstance(e, RuleUpsert)]
        # Each rule is written at most once per batch, so chunks may be written in any order.
        writing = asyncio.create_task(self._write(deletes, {}, restore, reporter))
        upserts = chosen.upserts
        for start in range(0, len(upserts), self.chunk_size):
            chunk = upserts[start : start + self.chunk_size]
            vectors = await self._embed(chunk)
            changed |= await writing
            writing = asyncio.create_task(self._write(chunk, vectors, restore, reporter))
        changed |= await writing
        return [
            IndexOutcome.APPLIED
            if outcome is IndexOutcome.APPLIED and event.target.slot in changed
            else IndexOutcome.STALE
            for event, outcome in zip(batch, chosen.outcomes, strict=True)
        ]

    async def _embed(self, upserts: list[RuleUpsert]) -> dict[tuple[str, str], bytes]:
        EMBED_BATCH.observe(len(upserts))
        with EMBED_SECONDS.time():
            matrix = await self.embedder.embed([embedding_text(u.rule) for u in upserts])
        return {
            (u.rule.tenant, u.rule.rule_id): row.tobytes()
            for u, row in zip(upserts, matrix, strict=True)
        }

    async def _write(
        self,
        writes: Sequence[RuleEvent],
        vectors: dict[tuple[str, str], bytes],
        restore: bool,
        reporter: _Reporter,
    ) -> set[tuple[str, str]]:
        if not writes:
            return set()
        results = await self.writer.write(writes, vectors, restore=restore)
        await reporter.written(writes, results)
        return {e.target.slot for e, ok in zip(writes, results, strict=True) if ok}


class _Reporter:
    """Tells ``report`` each event's outcome once, as soon as its rule is settled: at once for
    rules the batch does not write, after the write for the others. All events of one rule are
    told together in batch order, so ``rules.indexed`` keeps each rule's events in log order."""

    def __init__(self, batch: Sequence[RuleEvent], report: Report | None) -> None:
        self.report = report
        self.of_rule: dict[tuple[str, str], list[RuleEvent]] = {}
        for event in batch:
            self.of_rule.setdefault(event.target.slot, []).append(event)

    async def unwritten(self, writes: Mapping[tuple[str, str], RuleEvent]) -> None:
        if self.report is not None:
            await self.report([(event, IndexOutcome.STALE) for slot, same in self.of_rule.items()
                               if slot not in writes for event in same])  # fmt: skip

    async def written(self, writes: Sequence[RuleEvent], results: Sequence[bool]) -> None:
        if self.report is None:
            return
        told = []
        for winner, ok in zip(writes, results, strict=True):
            for event in self.of_rule[winner.target.slot]:
                applied = ok and event is winner
                told.append((event, IndexOutcome.APPLIED if applied else IndexOutcome.STALE))
        await self.report(told)
