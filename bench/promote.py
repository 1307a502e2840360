"""Promote to servable: how long a staged change set of N rules takes from its promote event to
every rule served at its new version, against publishing the same N versions as live edits
(the baseline, same run: ingest embeds and writes them on arrival).

Ingest runs as its own process, as deployed. Each round stages N new versions of the tenant's
N rules in a set of its own (confirmed), then publishes the promote and waits for its
confirmation (ingest confirms once the promote's one Lua script has switched the set live:
searches serve the set from then on, while its documents move into place, which is
timed too: ``promote_to_settled_ms``), then checks that a read returns a promoted version. Writes
``promote_to_servable_p99_ms`` (target <= 500 for 1,000 rules) and the baseline into
``bench/results/change_sets.json``, keeping the file's other keys.

    python -m bench.promote [--rules 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import merge_result, percentiles, private_stack, service_process, synthetic_rules
from shared import events
from shared.client import AlignstreamClient
from shared.kafka import ensure_topics
from shared.memory.keys import RuleKeys
from shared.memory.reader import RuleReader
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings

TENANT = "bench"


def versions(texts: list[str], version: int) -> list[events.RuleUpsert]:
    return [events.RuleUpsert(rule=events.Rule(tenant=TENANT, rule_id=f"r{i}", version=version,
                                               text=f"{text} (v{version})"))
            for i, text in enumerate(texts)]  # fmt: skip


async def measure(
    args: argparse.Namespace, kafka: KafkaSettings, redis: RedisSettings
) -> dict[str, object]:
    texts = synthetic_rules(args.rules, seed=5)
    promote_ms: list[float] = []
    confirm_ms: list[float] = []
    live_ms: list[float] = []
    settled_ms: list[float] = []
    client_redis = make_redis(redis)
    keys = RuleKeys(redis.key_prefix)
    reader = RuleReader(client_redis, keys)
    settling = keys.settling_key(TENANT)
    version = 1
    async with AlignstreamClient(kafka) as client:
        await client.publish_rules(versions(texts, version), wait=True, timeout_s=600)
        for round_ in range(args.rounds):
            # Baseline: the next N versions as live edits, published at once.
            version += 1
            started = time.perf_counter()
            await client.publish_rules(versions(texts, version), wait=True, timeout_s=600)
            live_ms.append((time.perf_counter() - started) * 1000)
            # The same N versions' successors staged, then promoted in one event.
            version += 1
            name = f"round-{round_}"
            staged = [events.ChangeSetStage(name=name, change=c) for c in versions(texts, version)]
            await client.publish_rules(staged, wait=True, timeout_s=600)
            event = events.ChangeSetPromote(tenant=TENANT, name=name, revision=args.rules)
            started = time.perf_counter()
            (confirmed,) = await client.publish_rules([event], wait=True, timeout_s=60)
            promote_ms.append((time.perf_counter() - started) * 1000)
            confirm_ms.append(confirmed.latency_ms)
            for _ in range(12_000):  # its documents moving into place (a minute at most)
                if not await client_redis.hexists(settling, name):
                    break
                await asyncio.sleep(0.005)
            settled_ms.append((time.perf_counter() - started) * 1000)
            assert confirmed.outcome is events.IndexOutcome.APPLIED, confirmed
            served = await reader.get(TENANT, f"r{args.rules - 1}")
            assert served is not None, "a promoted rule is served"
            assert served.version == version, served
    await client_redis.aclose()
    promote, live = percentiles(promote_ms), percentiles(live_ms)
    return {
        "promote_rules": args.rules,
        "promote_rounds": args.rounds,
        "promote_to_servable_p99_ms": promote["p99"],
        "promote_to_servable_ms": promote,
        "promote_event_to_confirmed_ms": percentiles(confirm_ms),
        "promote_to_settled_ms": percentiles(settled_ms),
        "live_publish_to_servable_ms": live,
        "promote_vs_live_publish_p50_ratio": round(promote["p50"] / live["p50"], 4),
    }


async def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    run_id = f"promotebench{int(time.time())}"
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"], topic_prefix=f"{run_id}.")
    await ensure_topics(kafka)
    redis = RedisSettings(url=env["REDIS_URL"], key_prefix=run_id)
    ingest_env = {**env, "ALIGNSTREAM_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                  "ALIGNSTREAM_REDIS_KEY_PREFIX": run_id}  # fmt: skip
    with service_process("ingest", ingest_env):
        return await measure(args, kafka, redis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with private_stack() as env:
        measured = asyncio.run(run(args, env))
    merge_result("change_sets", ("promote", "live_publish"), measured)


if __name__ == "__main__":
    main()
