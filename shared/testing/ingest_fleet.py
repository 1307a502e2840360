"""Ingest instances of one group and a client's own edits: what each edit is first confirmed
with (``stale`` would tell the client its own newest edit lost)."""

from __future__ import annotations

import contextlib
from collections import Counter

from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders import Embedder


async def own_edit_outcomes(
    settings: IngestSettings,
    embedder: Embedder,
    *,
    instances: int = 3,
    edits: int = 40,
    rules: int = 8,
    tenant: str = "acme",
) -> Counter[str]:
    """``instances`` ingest services; a client publishes ``edits`` edits one by one (each the
    next version of one of ``rules`` rules; with the fast lane, so two copies of each reach the
    group), waiting for each. Counts the outcome each edit was first confirmed with."""
    outcomes: Counter[str] = Counter()
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(instances):
            await stack.enter_async_context(IngestService(settings, embedder=embedder))
        client = await stack.enter_async_context(AlignstreamClient(settings.kafka))
        for i in range(edits):
            rule = events.Rule(tenant=tenant, rule_id=f"rule-{i % rules}", version=i // rules + 1,
                               text=f"Edit {i}: refunds are due within {i + 1} days.")  # fmt: skip
            (confirmed,) = await client.publish_rules([events.RuleUpsert(rule=rule)], wait=True,
                                                      timeout_s=60)  # fmt: skip
            outcomes[confirmed.outcome.value] += 1
    return outcomes
