"""The rule memory with up to a million rules in ONE tenant (issue 35 part 3), through the
product's own write path (the versioned Lua write, the tenant's HNSW index live) on a Redis of
its own, so that a restart can be timed.

Synthetic on purpose (a million embedded rules would take hours here): vectors are 512-dim unit
vectors with a low intrinsic dimension, as real embeddings have (``synthetic_vectors``); texts are
OPO's A-Law articles repeated, so full text sees a law corpus's vocabulary.
Queries are stored vectors with noise added (a question near a rule) and A-Law's questions.

Measured: insert rate, memory per rule (INFO used_memory delta), vector search p50/p99 at
retrieval's EF_RUNTIME with recall@5 against exact search (numpy over every vector), hybrid
search p50/p99 (vector + full text, fused, as retrieval runs it), and restart-to-ready (Redis
stopped, started, its AOF loaded and the index complete again). Beside it, the same vectors
stored as FLOAT16 in a plain index of their own (``float16_``): what that option saves and
costs in recall, measured, not yet the product's layout.

    python -m bench.scale [--rules 1000000] [--queries 500]

Writes the ``scale_`` keys of ``bench/results/scale.json`` (``cluster_`` keys stay).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from bench.common import merge_result, percentiles
from bench.search import OPO_DATA
from services.grading.datasets import load_exam
from shared import events
from shared.devstack.process import free_port
from shared.devstack.servers import ValkeyServer
from shared.memory.index import open_indexes
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.opo import opo_rules, read_jsonl
from shared.redis import command, index_ready, make_redis
from shared.settings import RedisSettings

DIM = 512
LATENT = 16
K = 5
TENANT = "one"
CHUNK = 1000


def synthetic_vectors(n: int, seed: int = 7) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
    """``n`` unit vectors with a low intrinsic dimension, as real embeddings have: points of a
    16-dim space projected into 512 dims, plus a little noise (isotropic noise in all 512 dims
    makes every neighbour a near-tie, which no real embedder does; measured: recall@5 0.54 at
    EF_RUNTIME 100 on such data). Also returns the projection, for the queries."""
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((LATENT, DIM)).astype(np.float32)
    latent = rng.standard_normal((n, LATENT)).astype(np.float32)
    vectors = latent @ projection + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, projection


def noisy(vectors: npt.NDArray[np.float32], picks: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """Questions near rules: stored vectors moved a little (a fifth of their length)."""
    rng = np.random.default_rng(11)
    moved = vectors[picks] + 0.2 * rng.standard_normal((len(picks), DIM)).astype(np.float32) / (
        DIM**0.5
    )
    normalized: npt.NDArray[Any] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return normalized.astype(np.float32)


async def used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def insert(writer: RuleWriter, vectors: npt.NDArray[np.float32]) -> float:
    """Every rule through the product's write path; rules per second."""
    articles = list(opo_rules(read_jsonl(OPO_DATA / "law_principles.jsonl"), tenant=TENANT,
                              domain=events.RuleDomain.LAW))  # fmt: skip
    started = time.perf_counter()
    for start in range(0, len(vectors), CHUNK):
        chunk = range(start, min(len(vectors), start + CHUNK))
        rules = [articles[i % len(articles)].model_copy(update={"rule_id": f"r{i}"}) for i in chunk]
        await writer.write([events.RuleUpsert(rule=rule) for rule in rules],
                           {(TENANT, f"r{i}"): vectors[i].tobytes() for i in chunk})  # fmt: skip
        if start % 100_000 == 0:
            print(f"inserted {start} in {time.perf_counter() - started:.0f} s", flush=True)
    return len(vectors) / (time.perf_counter() - started)


async def search(
    searcher: RuleSearcher, vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> dict[str, Any]:
    flt = RuleFilter(tenant=TENANT, as_of=date.today())
    latencies, recalls = [], []
    for query in queries:
        t0 = time.perf_counter()
        hits = await searcher.search(query.tobytes(), flt, k=K)
        latencies.append((time.perf_counter() - t0) * 1000)
        exact = set(np.argpartition(-(vectors @ query), K)[:K].tolist())
        recalls.append(len({int(h.rule_id[1:]) for h in hits} & exact) / K)
    return {"ms": percentiles(latencies), "recall_at_5": round(float(np.mean(recalls)), 4)}


async def hybrid(searcher: RuleSearcher, queries: npt.NDArray[np.float32]) -> dict[str, Any]:
    questions = [q.prompt_text() for q in load_exam(OPO_DATA / "a_law.csv").questions]
    flt = RuleFilter(tenant=TENANT, as_of=date.today())
    latencies = []
    for i, query in enumerate(queries):
        text = questions[i % len(questions)]
        t0 = time.perf_counter()
        await searcher.hybrid(text, query.tobytes(), flt, k=20)
        latencies.append((time.perf_counter() - t0) * 1000)
    return percentiles(latencies)


async def restart_to_ready(server: ValkeyServer, settings: RedisSettings, dim: int) -> float:
    server.stop(timeout_s=600)
    started = time.perf_counter()
    server.start(timeout_s=3600)  # healthy: the AOF is loaded
    client = make_redis(settings)
    try:
        indexes = await open_indexes(client, RuleSchema(settings.key_prefix, dim, "synthetic"))
        await indexes.wait_ready(timeout_s=3600)  # and the index covers every document again
    finally:
        await client.aclose()
    return time.perf_counter() - started


async def float16_what_if(
    client: aioredis.Redis, vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """The same vectors as FLOAT16 in a vector-only index of their own: memory and recall@5."""
    before = await used_memory(client)
    await command(client, "FT.CREATE", "f16", "ON", "HASH", "PREFIX", 1, "f16:", "SCHEMA",
                  "embedding", "VECTOR", "HNSW", 10, "TYPE", "FLOAT16", "DIM", DIM,
                  "DISTANCE_METRIC", "COSINE", "M", 16, "EF_CONSTRUCTION", 200)  # fmt: skip
    for start in range(0, len(vectors), CHUNK):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(len(vectors), start + CHUNK)):
            pipe.hset(f"f16:{i}", "embedding", vectors[i].astype(np.float16).tobytes())
        await pipe.execute()
    while not await index_ready(client, "f16"):  # noqa: ASYNC110 (the server indexes)
        await asyncio.sleep(0.5)
    memory = await used_memory(client) - before
    recalls = []
    for query in queries:
        knn = f"*=>[KNN {K} @embedding $v EF_RUNTIME 100]"
        blob = query.astype(np.float16).tobytes()
        raw = await command(client, "FT.SEARCH", "f16", knn, "PARAMS", 2, "v", blob,
                            "NOCONTENT", "DIALECT", 2)  # fmt: skip
        found = {int(key.decode().split(":")[1]) for key in raw[1:]}
        exact = set(np.argpartition(-(vectors @ query), K)[:K].tolist())
        recalls.append(len(found & exact) / K)
    return {"vector_only_bytes_per_rule": round(memory / len(vectors)),
            "recall_at_5": round(float(np.mean(recalls)), 4)}  # fmt: skip


async def measure(server: ValkeyServer, n: int, queries_n: int) -> dict[str, Any]:
    settings = RedisSettings(url=server.address, key_prefix="scalebench")
    vectors, _ = synthetic_vectors(n)
    queries = noisy(vectors, np.random.default_rng(5).integers(0, n, queries_n))
    client = make_redis(settings)
    try:
        schema = RuleSchema(settings.key_prefix, DIM, "synthetic")
        indexes = await open_indexes(client, schema)
        before = await used_memory(client)
        rate = await insert(RuleWriter(indexes), vectors)
        await indexes.wait_ready(timeout_s=3600)
        per_rule = (await used_memory(client) - before) / n
        searcher = RuleSearcher(client, schema, ef_runtime=100)
        vector = await search(searcher, vectors, queries)
        hybrid_ms = await hybrid(searcher, queries)
    finally:
        await client.aclose()
    restart_s = await restart_to_ready(server, settings, DIM)
    client = make_redis(settings)
    try:
        sample = min(n, 100_000)
        f16 = await float16_what_if(
            client,
            vectors[:sample],
            noisy(vectors[:sample], np.random.default_rng(6).integers(0, sample, queries_n)),
        )
    finally:
        await client.aclose()
    return {
        "scale_rules": n,
        "scale_queries": queries_n,
        "scale_vectors": f"synthetic: {LATENT}-dim latent points projected to {DIM} dims",
        "scale_insert_rules_per_s": round(rate, 1),
        "scale_memory_bytes_per_rule": round(per_rule),
        "scale_search_ms": vector["ms"],
        "scale_search_p99_ms": vector["ms"]["p99"],
        "scale_recall_at_5": vector["recall_at_5"],
        "scale_hybrid_ms": hybrid_ms,
        "scale_hybrid_p99_ms": hybrid_ms["p99"],
        "scale_restart_to_ready_s": round(restart_s, 1),
        "scale_float16_sample_rules": sample,
        "scale_float16": f16,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alignstream-scale-") as state:
        server = ValkeyServer(Path(state), free_port())
        server.start(timeout_s=60)
        try:
            result = asyncio.run(measure(server, args.rules, args.queries))
        finally:
            server.stop(timeout_s=600)
    merge_result("scale", ("scale_",), result)


if __name__ == "__main__":
    main()
