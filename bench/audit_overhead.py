"""What the audit trail costs the answer path: pipeline throughput (requests/s through Kafka and
the generation service) with an audit entry per answer against without, in alternating rounds
of the same run.

Two phases of the same run. First the pipeline alone: ingest, which chains the entries, is not
running yet (it is its own service on its own pods; on a 2-vCPU machine it would take its CPU
from the pipeline being timed): ``audit_overhead_ratio``. Then the same rounds with ingest
chaining beside them on the same two cores, reported apart
(``audit_overhead_ratio_with_chainer_beside``). Every entry of both phases must be chained in
the end (``audit_records_chained``).

The backend answers instantly (``FollowsItsSystemPrompt``): no engine time hides the audit's
own cost, so the ratio is a floor; with a real model it can only be closer to 1. Writes the
``audit_`` keys (target: ``audit_overhead_ratio`` >= 0.95) into
``bench/results/change_sets.json``, keeping the file's other keys.

    python -m bench.audit_overhead [--requests 600] [--rounds 10]
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
from shared.replay import TopicReplay
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.testing.backends import FollowsItsSystemPrompt
from shared.topics import AUDIT_LOG


def start_ingest(kafka: KafkaSettings, redis_url: str, key_prefix: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka.bootstrap, "REDIS_URL": redis_url,
           "ALIGNSTREAM_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "ALIGNSTREAM_REDIS_KEY_PREFIX": key_prefix}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


async def rounds(
    args: argparse.Namespace, generation: GenerationService, pipeline: Pipeline, phase: int
) -> dict[str, float]:
    """Alternating rounds (on, off / off, on): the median requests/s of each mode, and the
    median of the rounds' paired ratios (``ratio``: on / off of the same round, so a drift of
    the machine's speed over the run cancels; ``ratio_p25``/``ratio_p75`` show the spread)."""
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for round_ in range(args.rounds):
        for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
            generation.delivery.audit = "hash" if mode == "on" else None
            offset = (phase * args.rounds + round_ + 1) * 10_000
            started = time.perf_counter()
            await pipeline.run(requests(args.requests, 8, offset=offset))
            rates[mode].append(args.requests / (time.perf_counter() - started))
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    quartiles = statistics.quantiles(ratios, n=4)
    return {"on": statistics.median(rates["on"]), "off": statistics.median(rates["off"]),
            "ratio": statistics.median(ratios), "ratio_p25": quartiles[0],
            "ratio_p75": quartiles[2]}  # fmt: skip


async def chained_count(kafka: KafkaSettings, expected: int) -> int:
    """Waits (up to 5 minutes) for ingest to chain behind the answers, watching the log's end
    offsets (reading the whole log each time took the broker's CPU from the chainer), then
    reads and counts the links once."""
    for _ in range(300):
        async with TopicReplay(kafka, kafka.topics(AUDIT_LOG)) as log:
            if log.total >= expected:
                break
        await asyncio.sleep(1)
    return len((await read_audit_log(kafka)).links)


async def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    run_id = f"auditbench{int(time.time())}"  # a stack already used holds earlier runs' chains
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"], topic_prefix=f"{run_id}.")
    await ensure_topics(kafka)
    settings = GenerationSettings(
        kafka=kafka, observability=ObservabilitySettings(http_host="127.0.0.1", http_port=0)
    )
    generation = GenerationService(settings, backend=FollowsItsSystemPrompt())
    ingest = None
    try:
        async with generation, Pipeline(kafka) as pipeline:
            await pipeline.run(requests(args.requests, 8))  # warm-up (audit on)
            alone = await rounds(args, generation, pipeline, phase=0)
            ingest = start_ingest(kafka, env["REDIS_URL"], run_id)
            beside = await rounds(args, generation, pipeline, phase=1)
        expected = (2 * args.rounds + 1) * args.requests
        chained = await chained_count(kafka, expected)
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(timeout=60)
    return {
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "backend": "instant (FollowsItsSystemPrompt): the audit's own cost, no engine",
        "audit_on_requests_per_s": round(alone["on"], 1),
        "audit_off_requests_per_s": round(alone["off"], 1),
        "audit_overhead_ratio": round(alone["ratio"], 3),
        "audit_overhead_ratio_p25_p75": [
            round(alone["ratio_p25"], 3),
            round(alone["ratio_p75"], 3),
        ],
        "audit_overhead_ratio_with_chainer_beside": round(beside["ratio"], 3),
        "audit_chainer_beside_requests_per_s": {k: round(beside[k], 1) for k in ("on", "off")},
        "audit_records_expected": expected,
        "audit_records_chained": chained,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with private_stack() as env:
        measured = asyncio.run(run(args, env))
    merge_result("change_sets", ("audit_",), measured)


if __name__ == "__main__":
    main()
