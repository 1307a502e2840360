"""Bulk ingest: rules/s through Kafka + the ingest service vs two baselines of the same run.

Same texts, same machine, same run. The ingest service runs as its own process; the rules are
published at full speed and the clock stops at the last confirmation. Baselines, each configured
the same way: the raw embedder alone, and ``direct``: the same documents embedded and written
into the same kind of index by the service's own ingestor, in its batches, with no Kafka and no
service (``bench/ingest_direct.py``): what the pipeline itself costs is the gap to ``direct``.
Measured for two embedder configurations: BLAS on all cores (fastest raw, but on a 2-core box it
competes with Redis, the broker and the client) and BLAS on one thread
(``ALIGNSTREAM_EMBEDDER_THREADS=1``, leaving a core to the rest).

    python -m bench.bulk_ingest [--rules 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from bench.common import private_stack, service_process, synthetic_rules, write_result
from services.ingest.settings import IngestSettings
from shared import events
from shared.client import AlignstreamClient
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings


def raw_embedder_rate(texts: list[str], batch: int, threads: int | None) -> float:
    """Sentences/s of the embedder alone, in a fresh process (BLAS limits are per process)."""
    code = (
        "import sys, time, json\n"
        "from bench.common import synthetic_rules\n"
        "from shared.embedders.use import UniversalSentenceEncoder\n"
        f"texts = synthetic_rules({len(texts)}, seed=2)\n"
        f"e = UniversalSentenceEncoder(threads={threads}, batch_size={batch})\n"
        f"e.embed_sync(texts[:{batch}])\n"
        "t = time.perf_counter(); e.embed_sync(texts)\n"
        "print(len(texts) / (time.perf_counter() - t))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def direct_rate(rules: int, env: dict[str, str], batch: int, threads: int | None) -> float:
    """Rules/s of the ingestor writing straight into Redis, in a fresh process."""
    child_env = {**os.environ, **env}
    if threads is not None:
        child_env["ALIGNSTREAM_EMBEDDER_THREADS"] = str(threads)
    command = [sys.executable, "-m", "bench.ingest_direct", "--rules", str(rules),
               "--batch", str(batch), "--prefix", f"direct{threads}"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=child_env)
    rate, applied = out.stdout.split()
    assert int(applied) == rules, out.stdout
    return float(rate)


async def pipeline_rate(
    texts: list[str], env: dict[str, str], batch: int, threads: int | None
) -> tuple[float, int]:
    # Topics of its own: Tansu lists every stored batch of a partition on each fetch, so a
    # configuration measured after another would pay for the other's events and confirmations.
    prefix = f"bulk{threads}."
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"], topic_prefix=prefix)
    await ensure_topics(kafka)
    rules = [
        events.RuleUpsert(
            rule=events.Rule(tenant=f"t{i % 10}", rule_id=f"r{i}", version=threads or 9, text=t)
        )
        for i, t in enumerate(texts)
    ]
    service_env = {**env, "ALIGNSTREAM_INGEST_BATCH_MAX": str(batch),
                   "ALIGNSTREAM_REDIS_KEY_PREFIX": f"bulk{threads}",
                   "ALIGNSTREAM_KAFKA_TOPIC_PREFIX": prefix}  # fmt: skip
    if threads is not None:
        service_env["ALIGNSTREAM_EMBEDDER_THREADS"] = str(threads)
    with service_process("ingest", service_env):
        async with AlignstreamClient(kafka) as client:
            warm = events.RuleUpsert(rule=events.Rule(tenant="w", rule_id="w", version=1, text="w"))
            await client.publish_rules([warm], wait=True, timeout_s=120)  # service is consuming
            started = time.perf_counter()
            confirmed = await client.publish_rules(rules, wait=True, timeout_s=1800)
            elapsed = time.perf_counter() - started
    applied = sum(c.outcome is events.IndexOutcome.APPLIED for c in confirmed)
    return len(rules) / elapsed, applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=20_000)
    default_batch = IngestSettings.model_fields["batch_max"].default  # the service's own
    parser.add_argument("--batch", type=int, default=default_batch)
    args = parser.parse_args()
    texts = synthetic_rules(args.rules, seed=2)
    configs: dict[str, dict[str, object]] = {}
    with private_stack() as env:
        for label, threads in (("blas_all_cores", None), ("blas_1_thread", 1)):
            raw = raw_embedder_rate(texts, args.batch, threads)
            direct = direct_rate(args.rules, env, args.batch, threads)
            rate, applied = asyncio.run(pipeline_rate(texts, env, args.batch, threads))
            raw_after = raw_embedder_rate(texts[: len(texts) // 4], args.batch, threads)
            configs[label] = {
                "applied": applied,
                "raw_embedder_rules_per_s": round(raw, 1),
                "raw_embedder_rules_per_s_after": round(raw_after, 1),
                "direct_rules_per_s": round(direct, 1),
                "pipeline_rules_per_s": round(rate, 1),
                "ratio_pipeline_vs_raw": round(rate / raw, 3),
                "ratio_pipeline_vs_direct": round(rate / direct, 3),
            }
    best_raw = max(float(c["raw_embedder_rules_per_s"]) for c in configs.values())  # type: ignore[arg-type]
    best_pipeline = max(float(c["pipeline_rules_per_s"]) for c in configs.values())  # type: ignore[arg-type]
    best_direct = max(float(c["direct_rules_per_s"]) for c in configs.values())  # type: ignore[arg-type]
    write_result(
        "bulk_ingest",
        {
            "rules": args.rules,
            "batch_max": args.batch,
            "configs": configs,
            "ratio_best_pipeline_vs_best_raw": round(best_pipeline / best_raw, 3),
            "target_ratio": 0.9,
            # The pipeline's own cost: Kafka, decoding and validation, confirmations, batching.
            "ingest_vs_direct_ratio": round(best_pipeline / best_direct, 3),
            "target_ingest_vs_direct_ratio": 0.95,
            "redis_shares_the_cores_with_the_embedder": True,
        },
    )


if __name__ == "__main__":
    main()
