"""A memory of the old key layout (tenants named bare) moves in place to the hash-tagged layout
when a service opens it: documents stay searchable under the tenant's new index, the audit
chain's head and the job records keep their values, and the move runs once."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import redis.asyncio as aioredis

from services.grading.store import ExamStore
from shared.memory.index import open_indexes
from shared.memory.schema import RuleSchema, rule_fields
from shared.redis import as_text, command, index_ready
from shared.settings import RedisSettings
from tests.samples import sample_rule

VECTOR = np.ones(8, dtype=np.float32).tobytes()


async def write_old_layout(client: aioredis.Redis, p: str, schema: RuleSchema) -> None:
    args = schema.create_args("acme")
    args[0], args[5] = f"{p}:idx:rules:acme", f"{p}:rule:acme:"  # the layout-4 names
    await command(client, "FT.CREATE", *args)
    for rule_id in ("refunds", "privacy"):
        rule = sample_rule(rule_id=rule_id, version=3, text=f"The {rule_id} rule.")
        await client.hset(f"{p}:rule:acme:{rule_id}", mapping=cast(Any, rule_fields(rule, VECTOR)))
    await client.hset(f"{p}:ruleversions:acme", mapping={"refunds": 3, "privacy": 3})
    await client.hset(f"{p}:audit:head:acme", mapping={"seq": 41, "hash": "ab" * 32})
    await client.hset(f"{p}:exam:acme:job-1:meta", mapping={"status": "running"})
    await client.zadd(f"{p}:exam:jobs:acme", {"job-1": 1.0})
    await client.sadd(f"{p}:exam:active", "acme:job-1")
    await client.hset(f"{p}:apikey:k1", mapping={"pk": "k1", "key_id": "k1", "tenant": "acme"})


async def test_an_old_memory_moves_in_place(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    p = redis_settings.key_prefix
    schema = RuleSchema(p, 8, "test")
    await write_old_layout(redis_client, p, schema)
    indexes = await open_indexes(redis_client, schema)
    assert await indexes.tenants() == ["acme"]
    assert f"{p}:idx:rules:acme" not in {
        as_text(n) for n in await command(redis_client, "FT._LIST")
    }
    assert await index_ready(redis_client, schema.index_name("acme"))
    found = await command(redis_client, "FT.SEARCH", schema.index_name("acme"), "*", "NOCONTENT")
    assert sorted(as_text(k) for k in found[1:]) == [schema.doc_key("acme", "privacy"),
                                                     schema.doc_key("acme", "refunds")]  # fmt: skip
    assert await redis_client.hget(schema.versions_key("acme"), "refunds") == b"3"
    assert await redis_client.hget(schema.audit_head_key("acme"), "seq") == b"41"  # chain goes on
    exams = ExamStore(redis_client, p)
    assert await exams.active() == ["acme:job-1"]
    assert await redis_client.zrange(schema.jobs_key("exam", "acme"), 0, -1) == [b"job-1"]
    assert await redis_client.hget(f"{p}:{{apikeys}}:apikey:k1", "tenant") == b"acme"
    old = [as_text(k) async for k in redis_client.scan_iter(match=f"{p}:*acme*")]
    assert all("{acme}" in k for k in old), old  # nothing left under a bare tenant
    # Once moved, a second start moves nothing and keeps every document.
    await open_indexes(redis_client, schema)
    again = await command(redis_client, "FT.SEARCH", schema.index_name("acme"), "*", "NOCONTENT")
    assert again[0] == 2
