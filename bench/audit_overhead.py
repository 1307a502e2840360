"""What the audit trail costs the answer path: pipeline throughput (requests/s through Kafka and
the generation service) with an audit entry per answer against without, in alternating rounds
of the same run, with ingest (its own process, as deployed) chaining the entries beside it.

The backend answers instantly (``FollowsItsSystemPrompt``): no engine time hides the audit's
own cost, so the ratio is a floor; with a real model it can only be closer to 1. Writes
``audit_overhead_ratio`` (on / off; target >= 0.95) into ``bench/results/change_sets.json``,
keeping the file's other keys.

    python -m bench.audit_overhead [--requests 400] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from bench.common import merge_result, private_stack
from bench.generation_overhead import Pipeline, requests
from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from shared.audit_log import read_audit_log
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.testing.backends import FollowsItsSystemPrompt


def start_ingest(kafka: KafkaSettings, redis_url: str, key_prefix: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka.bootstrap, "REDIS_URL": redis_url,
           "ALIGNSTREAM_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "ALIGNSTREAM_REDIS_KEY_PREFIX": key_prefix}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


async def measure(
    args: argparse.Namespace, kafka: KafkaSettings, rates: dict[str, list[float]]
) -> int:
    """Alternating rounds (on, off / off, on); the records chained once ingest caught up."""
    settings = GenerationSettings(
        kafka=kafka, observability=ObservabilitySettings(http_host="127.0.0.1", http_port=0)
    )
    generation = GenerationService(settings, backend=FollowsItsSystemPrompt())
    async with generation, Pipeline(kafka) as pipeline:
        await pipeline.run(requests(args.requests, 8))  # warm-up (audit on)
        for round_ in range(args.rounds):
            for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                generation.delivery.audit = "hash" if mode == "on" else None
                items = requests(args.requests, 8, offset=(round_ + 1) * 10_000)
                started = time.perf_counter()
                await pipeline.run(items)
                rates[mode].append(args.requests / (time.perf_counter() - started))
    expected = (args.rounds + 1) * args.requests
    chained = 0
    for _ in range(180):  # ingest chains behind the answers
        chained = len((await read_audit_log(kafka)).links)
        if chained >= expected:
            break
        await asyncio.sleep(1)
    return chained


async def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    run_id = f"auditbench{int(time.time())}"  # a stack already used holds earlier runs' chains
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"], topic_prefix=f"{run_id}.")
    await ensure_topics(kafka)
    ingest = start_ingest(kafka, env["REDIS_URL"], run_id)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    try:
        chained = await measure(args, kafka, rates)
    finally:
        ingest.terminate()
        ingest.wait(timeout=60)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "backend": "instant (FollowsItsSystemPrompt): the audit's own cost, no engine",
        "audit_on_requests_per_s": round(on, 1),
        "audit_off_requests_per_s": round(off, 1),
        "audit_overhead_ratio": round(on / off, 3),
        "audit_records_expected": (args.rounds + 1) * args.requests,
        "audit_records_chained": chained,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with private_stack() as env:
        measured = asyncio.run(run(args, env))
    merge_result("change_sets", ("audit_",), measured)


if __name__ == "__main__":
    main()
