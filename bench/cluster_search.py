"""The memory on a Redis Cluster beside one Redis, in the same run: vector search p50/p99
through ``RuleSearcher`` with the same rules and queries on a local 3-primary, 3-replica Valkey
cluster and on a single Valkey, and what a primary's kill -9 loses of the rules acknowledged
with ``wait_replicas=1``.

Synthetic rules and vectors (random unit vectors, 512 dimensions: the search cost, not the
retrieval quality, is measured), spread over ``--tenants`` tenants, hence over the shards.
Everything runs on this machine's cores: the cluster's six servers share them, so the figure is
what routing and the cluster client cost, not what more machines would give. Writes the
``cluster_`` keys of ``bench/results/scale.json``.

    python -m bench.cluster_search [--rules 20000] [--tenants 20] [--queries 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

from bench.common import merge_result, percentiles
from shared import events
from shared.devstack.cluster import ValkeyCluster
from shared.devstack.process import free_port
from shared.devstack.servers import ValkeyServer
from shared.memory.index import open_indexes
from shared.memory.keys import hash_tag
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.redis import make_redis
from shared.settings import RedisSettings
from tests.samples import sample_rule

DIM = 512
K = 5


def unit_vectors(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


async def load(client: aioredis.Redis, args: argparse.Namespace, vectors: np.ndarray) -> float:
    """Write the rules (batches of 200 per tenant); rules per second."""
    writer = RuleWriter(await open_indexes(client, RuleSchema("bench", DIM, "synthetic")))
    started = time.perf_counter()
    per_tenant = args.rules // args.tenants
    for t in range(args.tenants):
        tenant = f"t{t}"
        for start in range(0, per_tenant, 200):
            ids = range(start, min(start + 200, per_tenant))
            batch = [events.RuleUpsert(rule=sample_rule(tenant=tenant, rule_id=f"r{i}"))
                     for i in ids]  # fmt: skip
            rows = {(tenant, f"r{i}"): vectors[t * per_tenant + i].tobytes() for i in ids}
            await writer.write(batch, rows)
    return float(args.rules / (time.perf_counter() - started))


async def searches(client: aioredis.Redis, args: argparse.Namespace) -> list[float]:
    searcher = RuleSearcher(client, RuleSchema("bench", DIM, "synthetic"), ef_runtime=100)
    queries = unit_vectors(args.queries, seed=1)
    timings = []
    for q, query in enumerate(queries):
        flt = RuleFilter(tenant=f"t{q % args.tenants}")
        started = time.perf_counter()
        await searcher.search(query.tobytes(), flt, k=K)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def measure(url: str, cluster: bool, args: argparse.Namespace) -> dict[str, object]:
    client = make_redis(RedisSettings(url=url, cluster=cluster, key_prefix="bench"))
    try:
        rate = await load(client, args, unit_vectors(args.rules, seed=0))
        await searches(client, args)  # warm-up: connections, slot map
        return {"insert_rules_per_s": round(rate, 1), "search_ms": percentiles(
            await searches(client, args))}  # fmt: skip
    finally:
        await client.aclose()


async def kill_a_primary(cluster: ValkeyCluster, rules: int) -> dict[str, object]:
    """Rules acknowledged with ``wait_replicas=1``, then kill -9 of their shard's primary: how
    many the promoted replica lacks."""
    client = make_redis(RedisSettings(url=cluster.url, cluster=True, key_prefix="kill"))
    assert isinstance(client, aioredis.RedisCluster)
    writer = RuleWriter(await open_indexes(client, RuleSchema("kill", DIM, "synthetic")),
                        wait_replicas=1, wait_timeout_s=5)  # fmt: skip
    vectors = unit_vectors(rules, seed=2)
    ids = [f"r{i}" for i in range(rules)]
    for i, rule_id in enumerate(ids):
        upsert = events.RuleUpsert(rule=sample_rule(tenant="victim", rule_id=rule_id, version=2))
        await writer.write([upsert], {("victim", rule_id): vectors[i].tobytes()})
    owner = cluster.owner_port(hash_tag("victim"))
    node = next(n for n in cluster.nodes if n.port == owner)
    pid = node.pid()
    assert pid is not None
    assert owner is not None
    killed = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    cluster.wait_for_owner_change(hash_tag("victim"), owner, timeout_s=60)
    failover_s = time.perf_counter() - killed
    for _ in range(100):
        try:
            versions = await writer.applied_versions([("victim", r) for r in ids])
            break
        except Exception:  # the client learns the new owner
            await asyncio.sleep(0.2)
    await client.aclose()
    lost = sum(1 for v in versions.values() if v != 2)
    return {"cluster_primary_kill_acknowledged_rules": rules,
            "cluster_primary_kill_lost_rules": lost,
            "cluster_failover_s": round(failover_s, 2)}  # fmt: skip


async def run(args: argparse.Namespace, state: Path) -> dict[str, object]:
    single = ValkeyServer(state / "single", free_port())
    cluster = ValkeyCluster(state / "cluster")
    try:
        single.start(60)
        cluster.up()
        alone = await measure(single.address, False, args)
        sharded = await measure(cluster.url, True, args)
        killed = await kill_a_primary(cluster, rules=200)
    finally:
        single.stop()
        cluster.down()
    single_ms, cluster_ms = alone["search_ms"], sharded["search_ms"]
    assert isinstance(single_ms, dict)
    assert isinstance(cluster_ms, dict)
    return {
        "cluster_rules": args.rules, "cluster_tenants": args.tenants,
        "cluster_queries": args.queries, "cluster_dim": DIM,
        "cluster_vectors": "synthetic unit vectors (search cost, not retrieval quality)",
        "cluster_layout": "3 primaries + 3 replicas, all on this machine's cores",
        "cluster_search_p99_ms": cluster_ms["p99"],
        "cluster_single_search_p99_ms": single_ms["p99"],
        "cluster_search_ms": cluster_ms, "cluster_single_search_ms": single_ms,
        "cluster_search_p99_vs_single": round(cluster_ms["p99"] / single_ms["p99"], 3),
        "cluster_insert_rules_per_s": sharded["insert_rules_per_s"],
        "cluster_single_insert_rules_per_s": alone["insert_rules_per_s"],
        **killed,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alignstream-cluster-") as state:
        measured = asyncio.run(run(args, Path(state)))
    merge_result("scale", ("cluster_",), measured)


if __name__ == "__main__":
    main()
