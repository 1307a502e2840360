"""An index upgrade without downtime: a new schema's index is built beside the old one and
swapped in by alias once complete, while questions flow; every search in between finds every
rule, and the old index is gone afterwards (its documents stay)."""

from __future__ import annotations

import asyncio

import numpy as np
import redis.asyncio as aioredis

from shared import events
from shared.memory.index import open_indexes
from shared.memory.query import RuleFilter
from shared.memory.schema import HnswParams, RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.redis import as_text, command
from shared.settings import RedisSettings
from tests.samples import sample_rule

DIM = 8
RULES = 300


async def test_an_upgrade_while_questions_flow(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    old = RuleSchema(redis_settings.key_prefix, DIM, "test")
    writer = RuleWriter(await open_indexes(redis_client, old))
    rng = np.random.default_rng(7)
    batch = [events.RuleUpsert(rule=sample_rule(rule_id=f"r{i}", version=1)) for i in range(RULES)]
    vectors = {("acme", f"r{i}"): rng.standard_normal(DIM).astype(np.float32).tobytes()
               for i in range(RULES)}  # fmt: skip
    await writer.write(batch, vectors)
    searcher = RuleSearcher(redis_client, old, ef_runtime=400)
    query = rng.standard_normal(DIM).astype(np.float32).tobytes()
    found: list[int] = []
    stop = asyncio.Event()

    async def questions() -> None:
        while not stop.is_set():
            hits = await searcher.search(query, RuleFilter(tenant="acme"), k=RULES)
            found.append(len(hits))
            await asyncio.sleep(0)

    asking = asyncio.create_task(questions())
    new = RuleSchema(redis_settings.key_prefix, DIM, "test", hnsw=HnswParams(m=8))
    assert new.fingerprint != old.fingerprint
    await open_indexes(redis_client, new)  # what a pod of the new version does at start-up
    swapped_at = len(found)
    await asyncio.sleep(0.5)  # questions after the swap as well
    stop.set()
    await asking
    assert swapped_at > 1
    assert len(found) > swapped_at
    assert set(found) == {RULES}  # no question met a missing or half-built index
    names = {as_text(n) for n in await command(redis_client, "FT._LIST")}
    assert new.physical_index("acme", new.fingerprint) in names
    assert old.physical_index("acme", old.fingerprint) not in names
