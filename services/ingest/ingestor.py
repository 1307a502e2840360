"""Embed and write a batch of rule events: shared by the service and ``memory rebuild``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import Histogram

from shared.embedders import Embedder
from shared.events import IndexOutcome, JurisdictionTree, MemoryEvent, RuleEvent, RuleUpsert
from shared.memory.schema import embedding_text
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import Plan, RuleWriter, WriteResult, plan
from shared.metrics import LATENCY_BUCKETS_S

EMBED_BATCH = Histogram(
    "alignstream_embed_batch_size",
    "Texts per embedding call in ingest.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
EMBED_SECONDS = Histogram(
    "alignstream_embed_seconds", "Time of one embedding call.", buckets=LATENCY_BUCKETS_S
)


Slot = tuple[str, str]
"""A rule: ``(tenant, rule_id)``."""

OnWritten = Callable[[Sequence[RuleEvent], Mapping[Slot, WriteResult]], Awaitable[None]]
"""Called as each write lands, with the events written and what the write did with each rule
(written, already written by another copy of the event, or stale: it lost a race to a newer
version): their outcomes are final."""


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch with its plan: which rules it will write, which it leaves alone."""

    batch: list[MemoryEvent]
    rules: list[RuleEvent]
    plan: Plan
    restore: bool

    @property
    def writing(self) -> set[Slot]:
        """The rules this batch writes."""
        return set(self.plan.writes)

    @property
    def settled(self) -> set[Slot]:
        """Rules of the batch that it leaves alone: Redis already has their version or a newer
        one (applied by another batch, which may not have confirmed it yet)."""
        return {e.target.slot for e in self.rules} - self.writing


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

    async def apply(self, batch: list[MemoryEvent], *, restore: bool = False) -> list[IndexOutcome]:
        """Apply a batch in order; the outcome of each event (APPLIED when its version is now
        in Redis: written, or already by another copy of it).
        ``restore`` (a rebuild after ``--drop``): rewrite the documents of applied versions.
        Jurisdiction trees replace the tenant's tree when newer."""
        return await self.run(await self.prepare(batch, restore=restore))

    async def prepare(self, batch: list[MemoryEvent], *, restore: bool = False) -> PreparedBatch:
        """Read the rules' applied versions and choose the writes (nothing is written yet)."""
        rules = [e for e in batch if not isinstance(e, JurisdictionTree)]
        applied, applied_by = await self.writer.applied([e.target.slot for e in rules])
        chosen = plan(rules, applied, restore=restore, applied_by=applied_by)
        return PreparedBatch(batch, rules, chosen, restore)

    async def run(
        self, prepared: PreparedBatch, *, on_written: OnWritten | None = None
    ) -> list[IndexOutcome]:
        """Embed and write what ``prepare`` chose; the outcome of each event, in order.
        ``on_written`` runs as each chunk's write lands, while the next chunk is embedded."""
        outcomes = iter(await self._apply_rules(prepared, on_written) if prepared.rules else [])
        result = []
        for event in prepared.batch:
            if isinstance(event, JurisdictionTree):
                stored = await self.trees.put(event)
                result.append(IndexOutcome.APPLIED if stored else IndexOutcome.STALE)
            else:
                result.append(next(outcomes))
        return result

    async def _apply_rules(
        self, prepared: PreparedBatch, on_written: OnWritten | None
    ) -> list[IndexOutcome]:
        chosen, restore = prepared.plan, prepared.restore
        results: dict[Slot, WriteResult] = {}
        deletes = [e for e in chosen.writes.values() if not isinstance(e, RuleUpsert)]
        # Each rule is written at most once per batch, so chunks may be written in any order.
        writing = asyncio.create_task(self._write(deletes, {}, restore, on_written))
        upserts = chosen.upserts
        for start, end in chunk_bounds(len(upserts), self.chunk_size):
            chunk = upserts[start:end]
            vectors = await self._embed(chunk)
            results |= await writing
            writing = asyncio.create_task(self._write(chunk, vectors, restore, on_written))
        results |= await writing
        # A written event's outcome is its write's, and so is that of a copy of it in the same
        # batch (a redelivery); the others' the plan's (stale, or applied already by another
        # copy of the event).
        return [
            (IndexOutcome.APPLIED if results[event.target.slot] else IndexOutcome.STALE)
            if (written := chosen.writes.get(event.target.slot)) is not None
            and written.event_id == event.event_id
            else outcome
            for event, outcome in zip(prepared.rules, chosen.outcomes, strict=True)
        ]

    async def _embed(self, upserts: list[RuleUpsert]) -> dict[Slot, bytes]:
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
        vectors: dict[Slot, bytes],
        restore: bool,
        on_written: OnWritten | None,
    ) -> dict[Slot, WriteResult]:
        if not writes:
            return {}
        written = await self.writer.write(writes, vectors, restore=restore)
        results = {e.target.slot: r for e, r in zip(writes, written, strict=True)}
        if on_written is not None:
            await on_written(writes, results)
        return results


def chunk_bounds(count: int, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk: ``size`` each, except that the last full-size stretch is
    split 3:1. Nothing overlaps the last chunk's write (the batch's confirmations wait for it), so
    a small last chunk keeps that tail short: 1/4 of a chunk's Redis write instead of all of it."""
    bounds = [(start, min(start + size, count)) for start in range(0, count, size)]
    if bounds:
        start, end = bounds[-1]
        tail = max(1, size // 4)
        if end - start > tail:
            bounds[-1:] = [(start, end - tail), (end - tail, end)]
    return bounds
