"""Freshness: publish a rule update -> the new version is returned by a search.

The ingest service runs as its own process; for each of N updates the bench publishes a new
version of one rule and polls the search step (what retrieval runs) until it returns that
version. Baseline in the same run: embed + write + search done directly, without Kafka.

Under a bulk load: the same live edits (one at a time, ~5 a second) while a bulk load of
``--bulk`` rules into the same tenant is being ingested; the bulk load's rate is compared with
the same load alone, and the edits' latency with the same edits published without the fast lane
(``rules.live``), i.e. queued behind the load in ``rules.events``.

    python -m bench.freshness [--updates 500] [--bulk 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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

TENANT = "bench"
LIVE = events.RuleDomain.LAW
"""The live rule's own domain: a search restricted to it finds that rule among the bulk."""


async def visible_version(searcher: RuleSearcher, vector: bytes, version: int) -> bool:
    hits = await searcher.search(vector, RuleFilter(tenant=TENANT, domains=(LIVE,)), k=1)
    return bool(hits) and hits[0].version >= version


def live_edit(version: int, text: str) -> events.RuleUpsert:
    return events.RuleUpsert(
        rule=events.Rule(tenant=TENANT, rule_id="live", version=version, text=text, domain=LIVE)
    )


async def servable_ms(
    client: AlignstreamClient, searcher: RuleSearcher, vector: bytes, event: events.RuleUpsert
) -> float:
    """Publish one edit as a person would (``rules publish`` of one rule) and poll the search
    until it returns the new version."""
    started = time.perf_counter()
    await client.publish_rules([event])
    while not await visible_version(searcher, vector, event.rule.version):  # noqa: ASYNC110
        await asyncio.sleep(0.0005)
    return (time.perf_counter() - started) * 1000


async def bulk_rate(env: dict[str, str], version: int, texts: list[str]) -> float:
    """Rules/s of a bulk load into the live rule's tenant as people run one, ``alignstream
    rules publish FILE --wait`` in its own process, from its start to its exit."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bulk.jsonl"
        lines = (json.dumps({"rule_id": f"b{i}", "version": version, "text": f"{t} (v{version})"})
                 for i, t in enumerate(texts))  # fmt: skip
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "services.cli", "rules", "publish", str(path),
                   "--tenant", TENANT, "--wait", "--timeout", "3600"]  # fmt: skip
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL
        )
        if await process.wait() != 0:
            raise RuntimeError(f"the bulk load failed: {' '.join(command)}")
        return len(texts) / (time.perf_counter() - started)


class LiveEdits:
    """Edits of the live rule, one at a time with a pause between them, numbered on."""

    def __init__(self, searcher: RuleSearcher, vector: bytes, texts: list[str]) -> None:
        self.searcher, self.vector, self.texts = searcher, vector, texts
        self.version = 1

    async def run(self, client: AlignstreamClient, count: int) -> list[float]:
        return [await self._one(client) for _ in range(count)]

    async def during(self, client: AlignstreamClient, work: asyncio.Task[float]) -> list[float]:
        latencies = []
        while not work.done():
            latencies.append(await self._one(client))
            await asyncio.sleep(0.2)
        return latencies

    async def _one(self, client: AlignstreamClient) -> float:
        self.version += 1
        text = self.texts[self.version % len(self.texts)]
        return await servable_ms(client, self.searcher, self.vector, live_edit(self.version, text))


async def run(updates: int, bulk: int, env: dict[str, str]) -> dict[str, object]:
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
    bulk_texts = synthetic_rules(bulk, seed=3)
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
    await embedder.close()  # the bench's own embedder no longer takes a core from ingest

    edits = LiveEdits(searcher, query, texts)
    with service_process("ingest", {**env, "ALIGNSTREAM_INGEST_BATCH_WAIT_MS": "2"}):
        await indexes.wait_ready()
        async with (
            AlignstreamClient(kafka) as producer,
            AlignstreamClient(kafka, live_lane_max_events=0) as laneless,
        ):
            # warm-up: wait until ingest consumes
            await producer.publish_rules([live_edit(1, texts[0])], wait=True, timeout_s=120)
            pipeline = await edits.run(producer, updates)
            # Confirmations carry the service's own event-to-servable figure.
            last = await producer.publish_rules([live_edit(edits.version + 1, texts[0])],
                                                wait=True)  # fmt: skip
            edits.version += 1
            confirmed = [c.latency_ms for c in last]
            # A bulk load alone, then the same size of load with live edits beside it (the fast
            # lane), then again with the edits queued behind it (no fast lane).
            idle_rate = await bulk_rate(env, 1, bulk_texts)
            loading = asyncio.create_task(bulk_rate(env, 2, bulk_texts))
            under_bulk = await edits.during(producer, loading)
            rate_with_edits = await loading
            loading = asyncio.create_task(bulk_rate(env, 3, bulk_texts))
            queued = await edits.during(laneless, loading)
            await loading
    await client.aclose()
    pipe, base, busy = percentiles(pipeline), percentiles(direct), percentiles(under_bulk)
    return {
        "updates": updates,
        "publish_to_searchable_ms": pipe,
        "direct_embed_write_search_ms": base,
        "ratio_p50_pipeline_vs_direct": round(pipe["p50"] / base["p50"], 2),
        "kafka_overhead_p50_ms": round(pipe["p50"] - base["p50"], 3),
        "confirmation_latency_ms": confirmed,
        "target_p99_ms": 150,
        "meets_target": pipe["p99"] <= 150,
        "bulk_rules": bulk,
        "publish_to_searchable_under_bulk_ms": busy,
        "freshness_under_bulk_p99_ms": busy["p99"],
        "target_freshness_under_bulk_p99_ms": 250,
        "publish_to_searchable_under_bulk_without_fast_lane_ms": percentiles(queued),
        "bulk_rules_per_s_alone": round(idle_rate, 1),
        "bulk_rules_per_s_with_live_edits": round(rate_with_edits, 1),
        "bulk_ratio_with_live_edits_vs_alone": round(rate_with_edits / idle_rate, 3),
        "target_bulk_ratio": 0.8,
        "meets_targets_under_bulk": busy["p99"] <= 250 and rate_with_edits / idle_rate >= 0.8,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=20_000)
    args = parser.parse_args()
    with private_stack() as env:
        result = asyncio.run(run(args.updates, args.bulk, env))
    write_result("freshness", result)


if __name__ == "__main__":
    main()
