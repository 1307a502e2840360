"""Scale-out correctness under steady load (issue 36): tiny scripted engines, 2 cores, the
real broker. Correctness, not throughput: a 2-core machine cannot show throughput scaling.

- ``scale_up``: generation 1 -> 3 -> 1 instances while requests arrive (each takes 3 s to
  generate): duplicate generations and lost requests, beside the same run with the revocation
  step made a no-op (the behaviour before #36) as the baseline.
- ``rolling_restart``: 3 generation pods restarted one by one (requests take 50 ms): the p99
  of request latency while they restart (the rebalance pause a client sees), with dynamic
  membership and with static membership (``group.instance.id``), beside the steady p99 before.
- ``own_edits``: 3 ingest instances; a client's edits, each waiting for its confirmation: how
  many it was first told were ``stale``.
- ``broker_kill``: 3 Tansu brokers behind one address (``stack up --brokers 3``); kill -9 of
  two of them while a producer (acks=all) and a consumer group run: acknowledged records lost.

    python -m bench.scale_out [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bench.common import percentiles, private_stack, write_result
from services.generation.revocation import PartitionWork, Revocation
from services.generation.settings import GenerationSettings
from services.ingest.settings import IngestSettings
from shared.devstack.process import free_port, free_ports_in_a_row
from shared.devstack.servers import LocalStack
from shared.embedders.use import UniversalSentenceEncoder
from shared.settings import KafkaSettings, ObservabilitySettings, RedisSettings
from shared.testing.broker_kill import produce_through_kills
from shared.testing.generation_fleet import GenerationFleet
from shared.testing.ingest_fleet import own_edit_outcomes

NOT_SHOWN = (
    "Throughput scaling: 2 cores run every instance, the broker and Redis, so more instances "
    "add no capacity here; these figures are about correctness (nothing lost, nothing done "
    "twice) and about the pause a rebalance causes. Static membership's benefit: Tansu does "
    "not honour group.instance.id (a restarted static member is refused as unknown until its "
    "session ends), so its figure here is worse than dynamic membership's; on Apache Kafka a "
    "restart within session.timeout.ms moves no partition. Sizing for a GPU fleet: "
    "docs/operations.md."
)


def _common(env: dict[str, str], prefix: str) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"], topic_prefix=f"{prefix}.",
                          partitions_override=6, session_timeout_ms=3000,
                          heartbeat_interval_ms=300)  # fmt: skip
    return {
        "kafka": kafka,
        "redis": RedisSettings(url=env["REDIS_URL"], key_prefix=prefix),
        "observability": ObservabilitySettings(http_host="127.0.0.1", http_port=0),
        "shutdown_timeout_s": 30.0,
    }


def _prefix(name: str) -> str:
    return f"so{name}{int(time.time() * 1000) % 10**8}"


async def _scale_up(env: dict[str, str], seconds: float) -> dict[str, Any]:
    """1 -> 3 -> 1 under load; the outcome's counts."""
    prefix = _prefix("up")
    settings = GenerationSettings(**_common(env, prefix), group_id=f"{prefix}.generation",
                                  max_in_flight=32, revoke_grace_s=0.3)  # fmt: skip
    async with GenerationFleet(settings, generate_s=3.0) as fleet:
        await fleet.scale_to(1)
        load = asyncio.create_task(fleet.load(rate_per_s=5, seconds=seconds))
        await asyncio.sleep(seconds * 0.2)
        await fleet.scale_to(3)
        await asyncio.sleep(seconds * 0.4)
        await fleet.scale_to(1)
        await load
        outcome = await fleet.settle(timeout_s=120)
    return {
        "requests": outcome.sent,
        "lost_requests": outcome.lost_requests,
        "duplicate_generations": outcome.duplicate_generations,
        "duplicate_answers": outcome.duplicate_answers,
        "generations_aborted": outcome.generations_started
        - outcome.sent
        - outcome.duplicate_generations,
    }


async def _no_revocation_step(self: PartitionWork[Any], partitions: Any) -> Revocation:
    return Revocation(0, 0, 0, 0.0)


async def _rolling_restart(env: dict[str, str], *, static: bool, gap_s: float) -> dict[str, Any]:
    prefix = _prefix("static" if static else "dynamic")
    settings = GenerationSettings(**_common(env, prefix), group_id=f"{prefix}.generation",
                                  max_in_flight=16)  # fmt: skip
    async with GenerationFleet(settings, generate_s=0.05, static_membership=static) as fleet:
        await fleet.scale_to(3)
        steady_s = 5.0
        load = asyncio.create_task(fleet.load(rate_per_s=20, seconds=steady_s + 3 * gap_s + 3))
        await asyncio.sleep(steady_s)
        steady = fleet.latencies_s()
        restarts = []
        for slot in range(3):
            started = time.monotonic()
            await fleet.restart(slot)
            restarts.append(round(time.monotonic() - started, 2))
            await asyncio.sleep(gap_s)
        await load
        outcome = await fleet.settle(timeout_s=300)
        during = fleet.latencies_s()[len(steady) :]
    return {
        "steady_latency_ms": percentiles([s * 1000 for s in steady]),
        "restart_latency_ms": percentiles([s * 1000 for s in during]),
        "restart_seconds": restarts,
        "lost_requests": outcome.lost_requests,
        "duplicate_answers": outcome.duplicate_answers,
    }


async def _own_edits(env: dict[str, str], edits: int) -> dict[str, Any]:
    prefix = _prefix("edits")
    settings = IngestSettings(**_common(env, prefix), group_id=f"{prefix}.ingest")
    embedder = UniversalSentenceEncoder()
    await embedder.start()
    outcomes = await own_edit_outcomes(settings, embedder, instances=3, edits=edits)
    return {"edits": edits, "first_confirmations": dict(outcomes)}


def _broker_kill(messages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="alignstream-brokers-") as state:
        stack = LocalStack(Path(state), kafka_port=free_ports_in_a_row(4), redis_port=free_port(),
                           s3_port=free_ports_in_a_row(8), brokers=3)  # fmt: skip
        try:
            stack.up()
            kills = {messages // 3: stack.brokers[0].kill, 2 * messages // 3: stack.brokers[1].kill}
            outcome = asyncio.run(produce_through_kills(stack.kafka.address, kills,
                                                        messages=messages))  # fmt: skip
        finally:
            stack.down()
    return {
        "brokers": 3,
        "killed": 2,
        "sent": outcome.sent,
        "acknowledged": outcome.acknowledged,
        "lost": outcome.lost,
        "longest_stall_ms": round(outcome.longest_stall_s * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    args = parser.parse_args()
    seconds, gap_s, edits, messages = (10, 2.0, 12, 600) if args.quick else (20, 4.0, 60, 3000)
    with private_stack() as env:
        handled = asyncio.run(_scale_up(env, seconds))
        with mock.patch.object(PartitionWork, "revoke", _no_revocation_step):
            baseline = asyncio.run(_scale_up(env, seconds))
        dynamic = asyncio.run(_rolling_restart(env, static=False, gap_s=gap_s))
        static = asyncio.run(_rolling_restart(env, static=True, gap_s=gap_s))
        edits_run = asyncio.run(_own_edits(env, edits))
    kill = _broker_kill(messages)
    write_result("scale_out", {
        "duplicate_generations_scale_up": handled["duplicate_generations"],
        "lost_requests": handled["lost_requests"],
        "duplicate_generations_scale_up_baseline": baseline["duplicate_generations"],
        "rebalance_pause_p99_ms": dynamic["restart_latency_ms"]["p99"],
        "rebalance_pause_p99_ms_static": static["restart_latency_ms"]["p99"],
        "steady_p99_ms": dynamic["steady_latency_ms"]["p99"],
        "stale_own_edit": edits_run["first_confirmations"].get("stale", 0),
        "broker_kill_lost": kill["lost"],
        "scale_up": handled,
        "scale_up_baseline": {**baseline, "what": "the revocation step a no-op (before #36)"},
        "rolling_restart_dynamic": dynamic,
        "rolling_restart_static": static,
        "own_edits": edits_run,
        "broker_kill": kill,
        "not_shown_on_2_cores": NOT_SHOWN,
    })  # fmt: skip


if __name__ == "__main__":
    main()
