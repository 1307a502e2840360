"""Embed and write a batch of rule events: shared by the service and ``memory rebuild``."""

from __future__ import annotations

from prometheus_client import Histogram

from services.ingest.memory import RuleEvent, RuleWriter, identity, plan
from shared.embedders import Embedder
from shared.events import IndexOutcome
from shared.metrics import LATENCY_BUCKETS_S

EMBED_BATCH = Histogram(
    "alignstream_embed_batch_size",
    "Texts per embedding call in ingest.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
EMBED_SECONDS = Histogram(
    "alignstream_embed_seconds", "Time of one embedding call.", buckets=LATENCY_BUCKETS_S
)


class RuleIngestor:
    def __init__(self, writer: RuleWriter, embedder: Embedder) -> None:
        self.writer = writer
        self.embedder = embedder

    async def apply(self, batch: list[RuleEvent]) -> list[IndexOutcome]:
        """Apply a batch in order; the outcome of each event (APPLIED only if it changed Redis)."""
        applied = await self.writer.applied_versions([identity(e)[:2] for e in batch])
        chosen = plan(batch, applied)
        vectors: dict[tuple[str, str], bytes] = {}
        if upserts := chosen.upserts:
            EMBED_BATCH.observe(len(upserts))
            with EMBED_SECONDS.time():
                matrix = await self.embedder.embed([u.rule.text for u in upserts])
            vectors = {
                (u.rule.tenant, u.rule.rule_id): row.tobytes()
                for u, row in zip(upserts, matrix, strict=True)
            }
        written = await self.writer.write(list(chosen.writes.values()), vectors)
        changed = {key for key, ok in zip(chosen.writes, written, strict=True) if ok}
        return [
            IndexOutcome.APPLIED
            if outcome is IndexOutcome.APPLIED and identity(event)[:2] in changed
            else IndexOutcome.STALE
            for event, outcome in zip(batch, chosen.outcomes, strict=True)
        ]
