"""Ingest's side of change sets: stage candidate versions (embedded like any upsert), promote
a set at once, discard it. Each event gets its confirmation on ``rules.indexed``; a promote also
republishes what it made live to the rule log, under each rule's own key, so that the compacted
log holds the rule's live version as it would after a plain edit (and ingest, reading it back,
records the version in the rule's history; the copies it applies are ``stale``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Counter

from shared.embedders import Embedder
from shared.events import (
    ChangeSetDiscard,
    ChangeSetEvent,
    ChangeSetPromote,
    ChangeSetStage,
    IndexOutcome,
    RuleUpsert,
)
from shared.memory.changesets import ChangeSetStore, PromoteResult
from shared.memory.schema import embedding_text

PROMOTES = Counter(
    "alignstream_change_set_promotes_total",
    "Change set promotes handled by ingest, by outcome (applied, stale: already, refused).",
    ["outcome"],
)

AfterPromote = Callable[[PromoteResult], Awaitable[None]]
"""What runs once a promote's confirmation is out: republish what went live, clear the staged
documents."""


class ChangeSetApplier:
    def __init__(self, store: ChangeSetStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    async def apply(
        self, batch: Sequence[ChangeSetEvent], after_promote: AfterPromote
    ) -> list[tuple[IndexOutcome, tuple[str, ...]]]:
        """Each event's outcome (and a refused promote's conflicting rules), in order. Stages
        are applied in runs between promotes and discards, so a set's order is kept."""
        results: list[tuple[IndexOutcome, tuple[str, ...]]] = []
        run: list[ChangeSetStage] = []
        for event in [*batch, None]:
            if isinstance(event, ChangeSetStage):
                run.append(event)
                continue
            if run:
                results += [(outcome, ()) for outcome in await self._stage(run)]
                run = []
            if isinstance(event, ChangeSetPromote):
                result = await self.store.promote(event)
                PROMOTES.labels(result.outcome.value).inc()
                if result.changes:
                    await after_promote(result)
                results.append((result.outcome, result.conflicts))
            elif isinstance(event, ChangeSetDiscard):
                results.append((await self.store.discard(event), ()))
        return results

    async def _stage(self, run: list[ChangeSetStage]) -> list[IndexOutcome]:
        # A set that is closed costs no embedding: its stages are refused by the script anyway.
        named = {(e.tenant, e.name) for e in run}  # each set read once, however many it stages
        open_sets = {(tenant, name) for tenant, name in named if await self._is_open(tenant, name)}
        staged = [e for e in run if (e.tenant, e.name) in open_sets]
        rules = [e.change.rule for e in staged if isinstance(e.change, RuleUpsert)]
        rows = iter([row.tobytes() for row in await self.embedder.embed(
            [embedding_text(r) for r in rules])] if rules else [])  # fmt: skip
        vectors = [next(rows) if isinstance(e.change, RuleUpsert) else None for e in staged]
        outcomes = iter(await self.store.stage(staged, vectors) if staged else [])
        return [next(outcomes) if (e.tenant, e.name) in open_sets else IndexOutcome.REFUSED
                for e in run]  # fmt: skip

    async def _is_open(self, tenant: str, name: str) -> bool:
        info = await self.store.info(tenant, name)
        return info is None or info.state == "open"
