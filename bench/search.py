"""Search: KNN k=5 with a tenant filter over N rules (default 100k) in Redis, and hybrid
retrieval (KNN + BM25 fused) with all N rules in one tenant.

Real USE embeddings of synthetic rule texts, 20 tenants (one index each). For each query the
filter is what retrieval sends for a plain request (active rules in force today); a second pass
adds a selective jurisdiction filter. Reports p50/p99 of the search step
(FT.SEARCH round trip from the client), recall@5 against exact numpy search over the tenant's
vectors, the same numpy brute force timed in the same run as baseline, and memory per rule
(INFO used_memory delta) extrapolated to 1M rules. Embeddings are cached in bench/results/.

    python -m bench.search [--rules 100000] [--queries 500]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from bench.common import RESULTS, percentiles, private_stack, synthetic_rules, write_result
from services.grading.datasets import load_exam
from shared import events
from shared.embedders.use import UniversalSentenceEncoder
from shared.memory.index import RuleIndexes, open_indexes
from shared.memory.labels import scope_values
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema, embedding_text
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.opo import opo_rules, read_jsonl
from shared.redis import command, make_redis
from shared.settings import RedisSettings

OPO_DATA = Path(__file__).parents[2] / "shared" / "data" / "opo"
TENANTS = 20
K = 5


def embeddings(texts: list[str], cache: Path) -> npt.NDArray[np.float32]:
    if cache.exists():
        cached: npt.NDArray[np.float32] = np.load(cache)
        if len(cached) == len(texts):
            return cached
    vectors = UniversalSentenceEncoder(batch_size=256).embed_sync(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


async def used_memory(settings: RedisSettings) -> int:
    client = make_redis(settings)
    info = await client.info("memory")
    await client.aclose()
    return int(info["used_memory"])


async def run(n: int, queries: int, env: dict[str, str]) -> dict[str, object]:
    texts = synthetic_rules(n, seed=3)
    vectors = embeddings(texts, RESULTS / f"cache-use-{n}.npy")
    query_vectors = UniversalSentenceEncoder().embed_sync(synthetic_rules(queries, seed=99))
    tenants = np.arange(n) % TENANTS
    # 20% of rules apply everywhere, the rest to one of 8 regions.
    regions = np.where(np.arange(n) % 5 == 0, -1, (np.arange(n) // TENANTS) % 8)

    settings = RedisSettings(url=env["REDIS_URL"], key_prefix="searchbench")
    client = make_redis(settings)
    schema = RuleSchema(settings.key_prefix, vectors.shape[1], "use-multilingual-v3")
    indexes = await open_indexes(client, schema)
    before = await used_memory(settings)
    writer = RuleWriter(indexes)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        chunk = range(start, min(n, start + 1000))
        rules = [
            events.Rule(
                tenant=f"t{tenants[i]}",
                rule_id=f"r{i}",
                version=1,
                text=texts[i],
                jurisdiction="global" if regions[i] < 0 else f"region{regions[i]}",
            )
            for i in chunk
        ]
        await writer.write(
            [events.RuleUpsert(rule=r) for r in rules],
            {
                (r.tenant, r.rule_id): vectors[i].tobytes()
                for r, i in zip(rules, chunk, strict=True)
            },
        )
    insert_s = time.perf_counter() - started
    await indexes.wait_ready()
    memory = await used_memory(settings) - before
    num_docs = 0
    for tenant in await indexes.tenants():
        info = await command(client, "FT.INFO", schema.index_name(tenant))
        num_docs += int(dict(zip(info[::2], info[1::2], strict=True))[b"num_docs"])

    today = date.today()

    async def measure(ef: int, selective: bool) -> dict[str, object]:
        searcher = RuleSearcher(client, schema, ef_runtime=ef)
        latencies, brute, recalls = [], [], []
        for q, query in enumerate(query_vectors):
            tenant = q % TENANTS
            flt = RuleFilter(
                tenant=f"t{tenant}",
                as_of=today,
                jurisdictions=scope_values(("region3",)) if selective else None,
            )
            t0 = time.perf_counter()
            hits = await searcher.search(query.tobytes(), flt, k=K)
            latencies.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            mask = tenants == tenant
            if selective:
                mask &= (regions == 3) | (regions < 0)
            own = np.flatnonzero(mask)
            exact = own[np.argsort(-(vectors[own] @ query))[:K]]
            brute.append((time.perf_counter() - t0) * 1000)
            found = {int(h.rule_id[1:]) for h in hits}
            recalls.append(len(found & set(exact.tolist())) / K)
        search, numpy_ms = percentiles(latencies), percentiles(brute)
        return {
            "search_ms": search,
            "numpy_brute_force_ms": numpy_ms,
            "ratio_p50_search_vs_numpy": round(search["p50"] / numpy_ms["p50"], 3),
            "recall_at_5": round(float(np.mean(recalls)), 4),
        }

    results = {f"ef_runtime_{ef}": await measure(ef, selective=False) for ef in (10, 50, 100, 200)}
    selective_result = await measure(100, selective=True)
    hybrid = await hybrid_one_tenant(writer, indexes, n, queries)
    await client.aclose()
    per_rule = memory / n
    return {
        "rules": n,
        "tenants": TENANTS,
        "rules_per_tenant": n // TENANTS,
        "queries": queries,
        "dim": int(vectors.shape[1]),
        "insert_rules_per_s": round(n / insert_s, 1),
        "index_num_docs": num_docs,
        "memory_bytes_per_rule": round(per_rule),
        "memory_1m_rules_gb_extrapolated": round(per_rule * 1_000_000 / 1e9, 2),
        "by_ef_runtime": results,
        "selective_jurisdiction_filter_ef_100": selective_result,
        "hybrid_one_tenant": hybrid,
        "default_ef_runtime": 100,
        "targets": {"p99_ms": 5, "recall_at_5": 0.95, "hybrid_p99_ms": 10},
    }


async def hybrid_one_tenant(
    writer: RuleWriter, indexes: RuleIndexes, n: int, queries: int
) -> dict[str, object]:
    """Hybrid retrieval with n rules in one tenant, over a law corpus's vocabulary: OPO's 3,961
    A-Law articles repeated to n (the share of rules each term is in stays the law corpus's),
    A-Law's questions as queries. Synthetic sentences are no test of full text: their few
    words are each in a sixth of the rules."""
    rules = list(opo_rules(read_jsonl(OPO_DATA / "law_principles.jsonl"), tenant="one",
                           domain=events.RuleDomain.LAW))  # fmt: skip
    encoder = UniversalSentenceEncoder(batch_size=64)
    vectors = embeddings([embedding_text(r) for r in rules], RESULTS / "cache-use-alaw.npy")
    for start in range(0, n, 1000):
        chunk = range(start, min(n, start + 1000))
        copies = [rules[i % len(rules)].model_copy(update={"rule_id": f"r{i}"}) for i in chunk]
        await writer.write(
            [events.RuleUpsert(rule=rule) for rule in copies],
            {("one", f"r{i}"): vectors[i % len(rules)].tobytes() for i in chunk},
        )
    await indexes.wait_ready()
    questions = [q.prompt_text() for q in load_exam(OPO_DATA / "a_law.csv").questions]
    texts = [questions[i % len(questions)] for i in range(queries)]
    query_vectors = encoder.embed_sync(texts)
    measured = await measure_hybrid(indexes.client, indexes.schema, texts, query_vectors)
    return {"rules": n, "corpus": "A-Law articles, repeated", **measured}


async def measure_hybrid(
    client: aioredis.Redis,
    schema: RuleSchema,
    texts: list[str],
    vectors: npt.NDArray[np.float32],
) -> dict[str, object]:
    """What retrieval runs per request (excluding the embedder): vector only, full text only,
    and both with their fusion, at retrieval's default depth (20 candidates each). A first
    pass warms the term counts (``term_stats.py``), as a running service has them."""
    searcher = RuleSearcher(client, schema, ef_runtime=100)
    flt = RuleFilter(tenant="one", as_of=date.today())
    for text, vector in zip(texts, vectors, strict=True):
        await searcher.text_search(text, vector.tobytes(), flt, k=20)
    flt = RuleFilter(tenant="one", as_of=date.today())
    timings: dict[str, list[float]] = {"vector": [], "lexical": [], "hybrid": []}
    fused_from_both = 0
    for text, vector in zip(texts, vectors, strict=True):
        blob = vector.tobytes()
        for name in timings:
            t0 = time.perf_counter()
            if name == "vector":
                await searcher.search(blob, flt, k=20)
            elif name == "lexical":
                await searcher.text_search(text, blob, flt, k=20)
            else:
                hits = await searcher.hybrid(text, blob, flt, k=20)
                fused_from_both += any(h.vector_rank and h.lexical_rank for h in hits)
            timings[name].append((time.perf_counter() - t0) * 1000)
    return {
        "hybrid_ms": percentiles(timings["hybrid"]),
        "vector_only_ms": percentiles(timings["vector"]),
        "lexical_only_ms": percentiles(timings["lexical"]),
        "queries_with_a_rule_found_by_both": fused_from_both,
        "meets_target": percentiles(timings["hybrid"])["p99"] <= 10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    with private_stack() as env:
        result = asyncio.run(run(args.rules, args.queries, env))
    write_result("search", result)


if __name__ == "__main__":
    main()
