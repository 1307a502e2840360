"""The memory on a real Redis Cluster (3 primaries, 3 replicas, Valkey with the search
modules): tenants spread over shards, each tenant's keys and index on the shard of its hash
tag; writes (Lua over a document and its ledger), searches, change-set reads and exam-job
transactions work unchanged through the cluster client, and no tenant sees another's rules."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import RedisError

from services.grading.datasets import ExamQuestion
from services.grading.records import scoped_id
from services.grading.store import ExamStore
from shared import events
from shared.devstack.cluster import ValkeyCluster
from shared.memory.index import open_indexes
from shared.memory.keys import hash_tag
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter, WriteResult
from shared.redis import command, make_redis
from shared.settings import RedisSettings
from shared.tenants import ApiKeys
from tests.samples import sample_rule

DIM = 8
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark")

WRITTEN, STALE = WriteResult.WRITTEN, WriteResult.STALE


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    formed = ValkeyCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        formed.up()
        yield formed
    finally:
        formed.down()


@pytest.fixture
async def client(cluster: ValkeyCluster) -> AsyncIterator[aioredis.Redis]:
    redis = make_redis(RedisSettings(url=cluster.url, cluster=True, key_prefix="t"))
    assert isinstance(redis, aioredis.RedisCluster)
    await redis.initialize()
    yield redis
    await redis.aclose()


T = TypeVar("T")


async def retry_while_failing_over(call: Callable[[], Awaitable[T]], tries: int = 50) -> T:
    for _ in range(tries - 1):
        try:
            return await call()
        except (RedisError, OSError):
            await asyncio.sleep(0.2)
    return await call()


def spread(i: int) -> bytes:
    """A vector of its own (distinct similarities: one order of hits)."""
    return np.random.default_rng(i).standard_normal(DIM).astype(np.float32).tobytes()


def vector(i: int) -> bytes:
    out = np.zeros(DIM, dtype=np.float32)
    out[i % DIM] = 1.0
    return out.tobytes()


async def test_tenants_spread_over_shards_and_stay_apart(client: aioredis.Redis) -> None:
    assert isinstance(client, aioredis.RedisCluster)
    shards = {client.get_node_from_key(hash_tag(t)).name for t in TENANTS}
    assert len(shards) >= 2  # these six tenants land on more than one primary
    schema = RuleSchema("t", DIM, "test")
    writer = RuleWriter(await open_indexes(client, schema))
    for i, tenant in enumerate(TENANTS):
        text = f"{tenant} refunds within {i} days."
        rule = sample_rule(tenant=tenant, rule_id="refunds", version=2, text=text)
        upsert = events.RuleUpsert(rule=rule)
        assert await writer.write([upsert], {(tenant, "refunds"): vector(i)}) == [WRITTEN]
        again = await writer.write([upsert], {(tenant, "refunds"): vector(i)})
        assert again == [WriteResult.ALREADY]  # the ledger knows the event: nothing written
    # Each index lives on its tenant's shard and holds that tenant's document only.
    assert sorted(await writer.indexes.tenants()) == sorted(TENANTS)
    searcher = RuleSearcher(client, schema, ef_runtime=10)
    for i, tenant in enumerate(TENANTS):
        hits = await searcher.hybrid("refunds days", vector(i), RuleFilter(tenant=tenant), k=5)
        assert [(h.rule_id, h.text) for h in hits] == [
            ("refunds", f"{tenant} refunds within {i} days.")
        ]
        node = client.get_node_from_key(hash_tag(tenant))
        assert key_slot(schema.doc_key(tenant, "refunds").encode()) == key_slot(
            hash_tag(tenant).encode()
        )
        info = await client.execute_command("FT.INFO", schema.index_name(tenant), target_nodes=node)
        fields = dict(zip(info[::2], info[1::2], strict=True))
        assert int(fields[b"num_docs"]) == 1
    # The index of no tenant is on a shard other than its tenant's.
    listed = await command(client, "FT._LIST")
    assert len(listed) == len(TENANTS)


async def test_exam_jobs_keep_their_transactions_in_one_slot(client: aioredis.Redis) -> None:
    store = ExamStore(client, "t")
    questions = [ExamQuestion(question_id="q1", stem="?", options={"A": "a", "B": "b"},
                              answer="A")]  # fmt: skip
    for tenant in ("acme", "globex"):
        job = events.ExamJob(tenant=tenant, job_id="j1", dataset="d",
                             strategies=(events.Strategy.BASE,))  # fmt: skip
        assert await store.create(job, "d", questions)
    assert await store.active() == [scoped_id("acme", "j1"), scoped_id("globex", "j1")]
    assert await store.cancel(scoped_id("acme", "j1"))
    assert await store.active() == [scoped_id("globex", "j1")]


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ValkeyCluster]:
    formed = ValkeyCluster(tmp_path / "failover")
    try:
        formed.up()
        yield formed
    finally:
        formed.down()


async def test_a_primary_killed_loses_no_acknowledged_rule(own_cluster: ValkeyCluster) -> None:
    settings = RedisSettings(url=own_cluster.url, cluster=True, key_prefix="t", wait_replicas=1)
    client = make_redis(settings)
    assert isinstance(client, aioredis.RedisCluster)
    schema = RuleSchema("t", DIM, "test")
    writer = RuleWriter(await open_indexes(client, schema), wait_replicas=1, wait_timeout_s=5)
    tenant = "acme"
    owner = client.get_node_from_key(hash_tag(tenant))
    ids = [f"r{i}" for i in range(40)]
    for i, rule_id in enumerate(ids):  # each acknowledged only once a replica holds it
        upsert = events.RuleUpsert(rule=sample_rule(tenant=tenant, rule_id=rule_id, version=3))
        assert await writer.write([upsert], {(tenant, rule_id): vector(i)}) == [WRITTEN]
    victim = next(n for n in own_cluster.nodes if n.port == owner.port)
    pid = victim.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    own_cluster.wait_for_owner_change(hash_tag(tenant), owner.port, timeout_s=30)
    # The same client, no restart: it follows the promoted replica.
    versions = await retry_while_failing_over(
        lambda: writer.applied_versions([(tenant, r) for r in ids])
    )
    assert versions == {(tenant, r): 3 for r in ids}
    searcher = RuleSearcher(client, schema, ef_runtime=10)
    hits = await searcher.search(vector(0), RuleFilter(tenant=tenant), k=40)
    assert sorted(h.rule_id for h in hits) == sorted(ids)  # the replica kept its index
    await client.aclose()


async def test_a_migrated_tenant_stays_searchable_with_the_same_answers(
    cluster: ValkeyCluster, client: aioredis.Redis
) -> None:
    assert isinstance(client, aioredis.RedisCluster)
    schema = RuleSchema("m", DIM, "test")
    writer = RuleWriter(await open_indexes(client, schema))
    tenant = "migrant"
    for i in range(12):
        upsert = events.RuleUpsert(rule=sample_rule(tenant=tenant, rule_id=f"r{i}", version=1))
        await writer.write([upsert], {(tenant, f"r{i}"): spread(i)})
    searcher = RuleSearcher(client, schema, ef_runtime=50)
    before = [h.rule_id for h in await searcher.search(spread(3), RuleFilter(tenant=tenant), k=5)]
    owner = cluster.owner_port(hash_tag(tenant))
    primaries = [n.port for n in cluster.nodes[: cluster.primaries]]
    cluster.migrate_slot(hash_tag(tenant), next(p for p in primaries if p != owner))
    # The same client follows the move; the new owner's copy of the index took the documents.
    after = await retry_while_failing_over(
        lambda: searcher.search(spread(3), RuleFilter(tenant=tenant), k=5)
    )
    assert [h.rule_id for h in after] == before  # distinct scores: one order
    assert await writer.applied_versions([(tenant, "r0")]) == {(tenant, "r0"): 1}


async def test_api_keys_are_listed_and_verified_on_a_cluster(cluster: ValkeyCluster) -> None:
    keys = ApiKeys.from_settings(RedisSettings(url=cluster.url, cluster=True, key_prefix="k"))
    await keys.open()
    try:
        made = {t: (await keys.create(t))[0] for t in TENANTS}
        for tenant, presented in made.items():  # records on one slot: the index sees them all
            assert [k.tenant for k in await keys.of_tenant(tenant)] == [tenant]
            verified = await keys.verify(presented)
            assert verified is not None
            assert verified.tenant == tenant
    finally:
        await keys.close()
