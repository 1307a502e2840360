"""Freshness: publish a rule update -> the new version is returned by a search.

The ingest service runs as its own process; for each of N updates the bench publishes a new
version of one rule and polls the search step (what retrieval runs) until it returns that
version. Baseline in the same run: embed + write + search done directly, without Kafka.

    python -m bench.freshness [--updates 500]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import percentiles, private_stack, service_process, synthetic_rules, write_result
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.kafka import ensure_topics
from shared.memory.index import open_indexes
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings
from shared.topics import RULES_EVENTS

TENANT = "bench"


async def visible_version(searcher: RuleSearcher, vector: bytes, version: int) -> bool:
    hits = await searcher.search(vector, RuleFilter(tenant=TENANT), k=1)
    return bool(hits) and hits[0].version >= version


async def run(updates: int, env: dict[str, str]) -> dict[str, object]:
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
    redis_settings = RedisSettings(url=env["REDIS_URL"])
    await ensure_topics(kafka)
    embedder = UniversalSentenceEncoder()
    await embedder.start()
    schema = RuleSchema(redis_settings.key_prefix, embedder.dim, embedder.name)
    client = make_redis(redis_settings)
    indexes = await open_indexes(client, schema)
    searcher = RuleSearcher(client, schema, ef_runtime=100)
    texts = synthetic_rules(updates, seed=1)
    query = (await embedder.embed(["customers personal data rule"]))[0].tobytes()

    # Baseline: the same work without Kafka (embed, write, search until visible).
    writer = RuleWriter(indexes)
    direct: list[float] = []
    for i, text in enumerate(texts[:100], start=1):
        rule = events.Rule(tenant=TENANT, rule_id="direct", version=i, text=text)
        started = time.perf_counter()
        vector = (await embedder.embed([text]))[0].tobytes()
        await writer.write([events.RuleUpsert(rule=rule)], {(TENANT, "direct"): vector})
        await searcher.search(query, RuleFilter(tenant=TENANT), k=1)
        direct.append((time.perf_counter() - started) * 1000)
    await client.delete(schema.doc_key(TENANT, "direct"))

    pipeline: list[float] = []
    confirmed: list[float] = []
    with service_process("ingest", {**env, "ALIGNSTREAM_INGEST_BATCH_WAIT_MS": "2"}):
        await indexes.wait_ready()
        async with AlignstreamClient(kafka) as producer:
            await producer.publish_rules(  # warm-up: wait until ingest consumes
                [events.RuleUpsert(rule=events.Rule(tenant=TENANT, rule_id="r", version=1,
                                                    text=texts[0]))],
                wait=True, timeout_s=120,
            )  # fmt: skip
            for i, text in enumerate(texts, start=2):
                event = events.RuleUpsert(
                    rule=events.Rule(tenant=TENANT, rule_id="r", version=i, text=text)
                )
                started = time.perf_counter()
                await producer.send(RULES_EVENTS, event)
                await producer.flush()
                while not await visible_version(searcher, query, i):  # noqa: ASYNC110
                    await asyncio.sleep(0.0005)
                pipeline.append((time.perf_counter() - started) * 1000)
            # Confirmations carry the service's own event-to-servable figure.
            last = await producer.publish_rules(
                [events.RuleUpsert(rule=events.Rule(tenant=TENANT, rule_id="r",
                                                    version=updates + 10, text=texts[0]))],
                wait=True,
            )  # fmt: skip
            confirmed = [c.latency_ms for c in last]
    await client.aclose()
    pipe, base = percentiles(pipeline), percentiles(direct)
    return {
        "updates": updates,
        "publish_to_searchable_ms": pipe,
        "direct_embed_write_search_ms": base,
        "ratio_p50_pipeline_vs_direct": round(pipe["p50"] / base["p50"], 2),
        "kafka_overhead_p50_ms": round(pipe["p50"] - base["p50"], 3),
        "confirmation_latency_ms": confirmed,
        "target_p99_ms": 150,
        "meets_target": pipe["p99"] <= 150,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=500)
    args = parser.parse_args()
    with private_stack() as env:
        result = asyncio.run(run(args.updates, env))
    write_result("freshness", result)


if __name__ == "__main__":
    main()
