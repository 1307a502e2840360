"""Several ingest instances and two copies of every edit (the fast lane's and the log's), in any
interleaving, on the real Redis: a copy is confirmed ``stale`` only when a newer version is
already in the memory. So a client is never told ``stale`` for its own newest edit, whichever
instance reads whichever copy first (the issue's ``stale_own_edit``)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.ingestor import PreparedBatch, RuleIngestor
from shared import events
from shared.memory.index import open_indexes
from shared.memory.schema import RuleSchema
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import RuleWriter
from shared.redis import make_redis
from shared.settings import RedisSettings
from shared.testing.embedders import CountingEmbedder
from tests.samples import sample_rule

INSTANCES = 3
_example = itertools.count()


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """``edits`` versions of one rule, two copies each: which instance reads each copy, and an
    order of the copies' steps (each copy's prepare before its run)."""
    edits = draw(st.integers(1, 3))
    copies = 2 * edits
    instance_of = draw(st.lists(st.integers(0, INSTANCES - 1), min_size=copies, max_size=copies))
    steps = draw(st.permutations([*range(copies), *range(copies)]))  # first: prepare, then run
    return edits, instance_of, steps


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("redis_client")  # drops this test's keys and indexes afterwards
def test_a_copy_is_stale_only_when_a_newer_version_is_in(redis_settings: RedisSettings) -> None:
    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(interleavings())
    def check(case: tuple[int, list[int], list[int]]) -> None:
        prefix = f"{redis_settings.key_prefix}:{next(_example)}"
        asyncio.run(_check(redis_settings.model_copy(update={"key_prefix": prefix}), *case))

    check()


async def _check(
    redis: RedisSettings, edits: int, instance_of: list[int], steps: list[int]
) -> None:
    client = make_redis(redis)
    try:
        schema = RuleSchema(redis.key_prefix, 8, "counting")
        trees = JurisdictionStore(client, redis.key_prefix)
        indexes = [await open_indexes(client, schema) for _ in range(INSTANCES)]
        instances = [RuleIngestor(RuleWriter(i), CountingEmbedder(), trees) for i in indexes]
        versions = [events.RuleUpsert(rule=sample_rule(rule_id="r", version=v + 1))
                    for v in range(edits)]  # fmt: skip
        copy_of = [versions[c // 2] for c in range(2 * edits)]  # copies 2v and 2v+1: edit v
        prepared: dict[int, PreparedBatch] = {}
        writer = instances[0].writer
        for copy in steps:
            ingestor = instances[instance_of[copy]]
            if copy not in prepared:
                prepared[copy] = await ingestor.prepare([copy_of[copy]])
                continue
            (outcome,) = await ingestor.run(prepared[copy])
            in_memory = (await writer.applied_versions([("acme", "r")]))[("acme", "r")]
            edit = copy_of[copy].rule.version
            # Stale only when a newer version is in (an applied confirmation may still arrive
            # after a newer write: it was in, and a later one superseded it).
            if outcome is events.IndexOutcome.STALE:
                assert in_memory > edit, f"copy {copy} of version {edit} stale, {in_memory} in"
            else:
                assert in_memory >= edit
        final = await writer.applied_versions([("acme", "r")])
        assert final[("acme", "r")] == edits  # the newest version is the one kept
    finally:
        await client.aclose()
