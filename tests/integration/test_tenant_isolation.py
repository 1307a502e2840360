"""Property: a tenant's search never returns another tenant's rules, whatever the tenant names
(case, ``-``/``_`` look-alikes, prefixes of each other), rule ids and texts they share."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import events
from shared.memory.index import open_indexes
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.redis import make_redis
from shared.settings import RedisSettings
from tests.samples import sample_rule

DIM = 8
LOOK_ALIKES = ["acme", "Acme", "ACME", "acme-eu", "acme_eu", "acme-", "a", "ac", "acme1"]

rule_sets = st.lists(
    st.tuples(
        st.sampled_from(LOOK_ALIKES),
        st.sampled_from(["r1", "r2", "privacy-1", "a:b"]),
        st.lists(st.floats(-1, 1, allow_nan=False), min_size=DIM, max_size=DIM),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda t: (t[0], t[1]),
)
_example = itertools.count()


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("redis_client")  # drops this test's keys and indexes afterwards
def test_no_tenant_sees_another_tenants_rules(redis_settings: RedisSettings) -> None:
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(rule_sets, st.lists(st.floats(-1, 1, allow_nan=False), min_size=DIM, max_size=DIM))
    def check(rules: list[tuple[str, str, list[float]]], query: list[float]) -> None:
        key_prefix = f"{redis_settings.key_prefix}:{next(_example)}"
        asyncio.run(_check(redis_settings.model_copy(update={"key_prefix": key_prefix}),
                           rules, query))  # fmt: skip

    check()


async def _check(
    redis: RedisSettings, rows: list[tuple[str, str, list[float]]], query: list[float]
) -> None:
    client = make_redis(redis)
    try:
        schema = RuleSchema(redis.key_prefix, DIM, "test")
        writer = RuleWriter(await open_indexes(client, schema))
        upserts = [
            events.RuleUpsert(rule=sample_rule(tenant=t, rule_id=r, text=f"{t}|{r}"))
            for t, r, _ in rows
        ]
        await writer.write(upserts, {(t, r): _unit(v) for t, r, v in rows})
        searcher = RuleSearcher(client, schema, ef_runtime=100)
        for tenant in LOOK_ALIKES:
            hits = await searcher.search(_unit(query), RuleFilter(tenant=tenant), k=50)
            assert {hit.text.split("|")[0] for hit in hits} <= {tenant}
            assert {hit.rule_id for hit in hits} == {r for t, r, _ in rows if t == tenant}
    finally:
        await client.aclose()


def _unit(values: list[float]) -> bytes:
    vector = np.asarray(values, dtype=np.float32) + np.float32(1e-3)  # never all zero
    return (vector / np.linalg.norm(vector)).astype(np.float32).tobytes()
