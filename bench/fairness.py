"""Fair sharing, measured: a quiet tenant's steady traffic through the gateway while a noisy
tenant (a) opens many slow requests from two keys, (b) sends 100k-character texts to chat and
to the check endpoint, (c) opens streams and drops them, (d) publishes requests naming reply
topics that do not exist. The whole pipeline runs as separate processes (ingest, retrieval,
generation with the real vLLM engine and the tiny model on CPU, gateway) on the local stack.

Keys: ``scenarios.<name>.quiet_tenant_p99_ratio`` (the quiet tenant's chat p99 against its p99
alone, measured in the same run; target <= 2.0), ``...quiet_failed`` (target 0),
``...noisy_statuses`` (what the noisy tenant's excess got); ``forged_answers_accepted`` (answers
published on ``exam.answers`` under the ids a producer can work out from a job's public values;
target 0); ``burst_with_hog_vs_alone`` (a burst of 420 questions through retrieval with a CPU
hog running, over the same burst alone; target <= 2.0) with ``whole_batch_redeliveries`` (target
0) and ``search_retries``.

    python -m bench.fairness [--quiet-requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import shutil
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.broker_probe import Stall, broker_stalls, overlaps
from bench.common import percentiles, private_stack, service_process, synthetic_rules, write_result
from bench.noisy_tenant import (
    Behaviour,
    Http,
    big_texts,
    dropped_streams,
    quiet_traffic,
    slow_requests,
    unpublishable_replies,
)
from services.grading.app import GradingService
from services.grading.asking import request_id_for
from services.grading.datasets import load_exam
from services.grading.records import item_of, scoped_id
from services.grading.settings import GradingSettings
from shared import events
from shared.client import AlignstreamClient
from shared.devstack.servers import free_port
from shared.devstack.tiny_model import build_tiny_model
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings, RedisSettings
from shared.tenants import ApiKeys
from shared.topics import EXAM_ANSWERS, EXAM_JOBS

QUIET, NOISY = "quiet", "noisy"
EXAM = Path(__file__).parents[1] / "tests" / "fixtures" / "exam_en.jsonl"
BURST = 420


async def make_keys(redis: RedisSettings) -> dict[str, str]:
    keys = ApiKeys.from_settings(redis)
    await keys.open()
    made = {
        "quiet": (await keys.create(QUIET, rate_limit_per_s=1000))[0],
        # The noisy tenant's keys take the gateway's default rate (20/s).
        "noisy_a": (await keys.create(NOISY))[0],
        "noisy_b": (await keys.create(NOISY))[0],
    }
    await keys.close()
    return made


async def forged_answers(kafka: KafkaSettings, redis: RedisSettings, root: Path) -> dict[str, Any]:
    """An exam job of the quiet tenant with no generation running (its items stay pending),
    and an answer to every item published under the id a producer computes from the job's
    public values (tenant, job id, item): how many are taken."""
    (root / QUIET).mkdir(parents=True)
    shutil.copy(EXAM, root / QUIET / EXAM.name)
    settings = GradingSettings(kafka=kafka, redis=redis, data_root=root, window=64)
    job = events.ExamJob(tenant=QUIET, dataset=EXAM.name, strategies=(events.Strategy.BASE,))
    async with GradingService(settings) as grading, AlignstreamClient(kafka) as client:
        await client.send(EXAM_JOBS, job)
        await client.flush()
        store, sid = grading._store(), scoped_id(QUIET, job.job_id)
        while (await store.counts(sid))[1] == 0:  # noqa: ASYNC110 (polls Redis)
            await asyncio.sleep(0.05)
        questions = [q.question_id for q in load_exam(EXAM).questions]
        for question_id in questions:
            item = item_of(events.Strategy.BASE, question_id)
            forged = events.ChatResponse(
                request_id=request_id_for("", QUIET, job.job_id, item), tenant=QUIET, text="A",
                metadata={"exam_job": job.job_id, "exam_item": str(item)},
            )  # fmt: skip
            await client.send(EXAM_ANSWERS, forged)
        await client.flush()
        await asyncio.sleep(5)  # time to take them, had they been taken
        accepted = len(await store.answers(sid))
        await store.cancel(sid)
    return {"forged_answers_published": len(questions), "forged_answers_accepted": accepted}


def _lag_over(ports: dict[str, int], seconds: float) -> dict[str, float]:
    """Each service's event-loop lag samples so far that were later than ``seconds`` (count
    and bucket from one scrape, so they agree)."""
    name = "alignstream_event_loop_lag_seconds"
    over: dict[str, float] = {}
    for service, port in ports.items():
        lines = _scrape(port)
        within = _summed(lines, f"{name}_bucket", le=str(seconds))
        over[service] = _summed(lines, f"{name}_count") - within
    return over


def _clear_of(raw: list[dict[str, float]], stalls: list[Stall]) -> list[float]:
    """The chat latencies (client side) of the answers no broker stall overlapped."""
    kept = []
    for timings in raw:
        took_ms = timings["gateway_ms"] + timings["outside_gateway_ms"]
        if not overlaps((timings["at"] - took_ms / 1000, timings["at"]), stalls):
            kept.append(took_ms)
    return kept


def _stall_summary(stalls: list[Stall]) -> dict[str, float]:
    lengths = [end - start for start, end in stalls]
    return {"count": len(stalls), "longest_s": round(max(lengths, default=0.0), 3)}


async def scenarios(base_url: str, keys: dict[str, str], kafka: KafkaSettings,
                    quiet_requests: int, only: set[str],
                    ports: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        quiet = Http(session, base_url, keys["quiet"])
        noisy = [Http(session, base_url, keys[k]) for k in ("noisy_a", "noisy_b")]
        await quiet_traffic(quiet, 6, with_check=True)  # warm-up
        with broker_stalls(kafka.bootstrap) as alone_stalls:
            alone = await quiet_traffic(quiet, quiet_requests, with_check=True)
        sent: Counter[str] = Counter()
        behaviours: dict[str, Behaviour] = {
            "slow_requests": slow_requests(noisy),
            "big_texts": big_texts(noisy[0]),
            "dropped_streams": dropped_streams(noisy[0]),
            "unpublishable_replies": unpublishable_replies(kafka, NOISY, sent),
        }
        alone_p99 = percentiles(alone["chat_ms"])["p99"]
        alone_clear_p99 = percentiles(_clear_of(alone["raw"], alone_stalls))["p99"]
        alone_check_p99 = percentiles(alone["check_ms"])["p99"]
        results: dict[str, Any] = {}
        for name, behaviour in behaviours.items():
            if only and name not in only:
                continue
            for http in noisy:
                http.statuses.clear()
            stop = asyncio.Event()
            noise = asyncio.create_task(behaviour(stop))
            await asyncio.sleep(3)  # the noise is at full strength
            lagged = _lag_over(ports, 0.1)
            with broker_stalls(kafka.bootstrap) as stalls:
                measured = await quiet_traffic(quiet, quiet_requests,
                                               with_check=name == "big_texts")  # fmt: skip
            lagged = {s: n - lagged[s] for s, n in _lag_over(ports, 0.1).items()}
            clear = percentiles(_clear_of(measured["raw"], stalls))
            stop.set()
            await noise
            await asyncio.sleep(2)  # what the noise left running drains
            chat = percentiles(measured["chat_ms"])
            results[name] = {
                "quiet_tenant_p99_ratio": round(chat["p99"] / alone_p99, 3),
                "quiet_chat_ms": chat,
                "quiet_failed": measured["failed"],
                # Where the quiet tenant's time went: waiting for a slot, or generating.
                "quiet_pipeline_ms": {
                    name: percentiles(values) for name, values in measured["pipeline"].items()
                },
                "noisy_statuses": {str(k): v for http in noisy for k, v in http.statuses.items()},
                # Samples (every 50 ms) in which a service's event loop ran 100 ms+ late.
                "event_loop_lag_over_100ms": lagged,
                # Hops of the broker probe slower than 300 ms, and the quiet tenant's answers
                # that did not overlap one (against the same alone).
                "broker_stalls": _stall_summary(stalls),
                "quiet_tenant_p99_ratio_clear_of_broker_stalls": round(
                    clear["p99"] / alone_clear_p99, 3
                ),
                "quiet_chat_ms_clear_of_broker_stalls": clear,
            }
            if only:  # a diagnostic run: every request's timings
                results[name]["raw"] = measured["raw"]
            if measured["check_ms"]:
                check = percentiles(measured["check_ms"])
                results[name]["quiet_check_ms"] = check
                results[name]["quiet_check_p99_ratio"] = round(check["p99"] / alone_check_p99, 3)
        if "unpublishable_replies" in results:
            results["unpublishable_replies"]["noisy_requests_published"] = sent["requests"]
        return {"alone": {"chat_ms": percentiles(alone["chat_ms"]),
                          "broker_stalls": _stall_summary(alone_stalls),
                          "check_ms": percentiles(alone["check_ms"]),
                          "pipeline_ms": {n: percentiles(v)
                                          for n, v in alone["pipeline"].items()}},
                "scenarios": results}  # fmt: skip


def _hog(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def _scrape(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
    return text.splitlines()


def _summed(lines: list[str], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` (and its suffixed series) with ``labels``."""
    total = 0.0
    for line in lines:
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _metric(port: int, name: str, **labels: str) -> float:
    return _summed(_scrape(port), name, **labels)


async def burst(kafka: KafkaSettings, metrics_port: int) -> dict[str, Any]:
    """``BURST`` OPO questions of the quiet tenant at once through retrieval: alone, then with a
    process spinning on one of the machine's cores for the whole burst."""
    timings: dict[str, float] = {}
    consumed = "alignstream_messages_consumed_total"
    before = _metric(metrics_port, consumed, topic="chat.requests")
    retries_before = _metric(metrics_port, "alignstream_retrieval_search_retries_total")
    async with AlignstreamClient(kafka) as client:
        for label in ("alone", "with_hog"):
            hog = multiprocessing.Process(target=_hog, args=(120.0,))
            if label == "with_hog":
                hog.start()
            requests = [
                events.ChatRequest(tenant=QUIET, strategy=events.Strategy.OPO, messages=(
                    events.ChatMessage(role=events.Role.USER,
                                       content=f"Question {label} {i}: who keeps invoices?"),))
                for i in range(BURST)
            ]  # fmt: skip
            started = time.perf_counter()
            grounded = await client.ground(requests, timeout_s=600)
            timings[label] = time.perf_counter() - started
            assert len(grounded) == BURST, len(grounded)
            if hog.is_alive():
                hog.terminate()
    redelivered = _metric(metrics_port, consumed, topic="chat.requests") - before - 2 * BURST
    return {
        "burst_questions": BURST,
        "burst_alone_s": round(timings["alone"], 3),
        "burst_with_hog_s": round(timings["with_hog"], 3),
        "burst_with_hog_vs_alone": round(timings["with_hog"] / timings["alone"], 3),
        "whole_batch_redeliveries": int(redelivered),
        "search_retries": int(
            _metric(metrics_port, "alignstream_retrieval_search_retries_total") - retries_before
        ),
    }


async def load_rules(kafka: KafkaSettings, count: int) -> None:
    rule_events = [events.RuleUpsert(rule=events.Rule(tenant=QUIET, rule_id=f"r{i}", version=1,
                                                      text=text))
                   for i, text in enumerate(synthetic_rules(count))]  # fmt: skip
    async with AlignstreamClient(kafka) as client:
        await client.publish_rules(rule_events, wait=True, timeout_s=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quiet-requests", type=int, default=60)
    parser.add_argument("--model", default=None, help="default: the tiny random-weight model")
    parser.add_argument("--only", action="append", default=[], metavar="SCENARIO",
                        help="run only these scenarios (repeatable), skip the forgery and burst "
                             "checks, and print the result instead of writing it")  # fmt: skip
    args = parser.parse_args()
    only = set(args.only)
    model = args.model or str(build_tiny_model(Path(".alignstream/models/tiny-chat")))
    port, retrieval_port = free_port(), free_port()
    ports = {name: free_port() for name in ("generation", "gateway")}
    ports["retrieval"] = retrieval_port
    with private_stack() as env, tempfile.TemporaryDirectory() as exams:
        kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
        redis = RedisSettings(url=env["REDIS_URL"])
        asyncio.run(ensure_topics(kafka))
        keys = asyncio.run(make_keys(redis))
        forged = {} if only else asyncio.run(forged_answers(kafka, redis, Path(exams)))
        engine = {"ALIGNSTREAM_VLLM_MODEL": model, "ALIGNSTREAM_VLLM_DTYPE": "float32",
                  "ALIGNSTREAM_VLLM_ENFORCE_EAGER": "true",
                  "ALIGNSTREAM_VLLM_MAX_MODEL_LEN": "1024", "ALIGNSTREAM_VLLM_KV_CACHE_GIB": "1",
                  "ALIGNSTREAM_GENERATION_MAX_IN_FLIGHT": "32"}  # fmt: skip
        gateway = {"ALIGNSTREAM_GATEWAY_PORT": str(port),
                   "ALIGNSTREAM_GATEWAY_MAX_IN_FLIGHT": "64",
                   "ALIGNSTREAM_GATEWAY_INSTANCE": "bench-fairness"}  # fmt: skip
        with (
            service_process("ingest", env),
            service_process("retrieval", {**env, "ALIGNSTREAM_HTTP_PORT": str(retrieval_port)}),
        ):
            asyncio.run(load_rules(kafka, 500))
            burst_result = {} if only else asyncio.run(burst(kafka, retrieval_port))
            with (
                service_process(
                    "generation",
                    {**env, **engine, "ALIGNSTREAM_HTTP_PORT": str(ports["generation"])},
                ),
                service_process(
                    "gateway", {**env, **gateway, "ALIGNSTREAM_HTTP_PORT": str(ports["gateway"])}
                ),
            ):
                measured = asyncio.run(scenarios(f"http://127.0.0.1:{port}/v1", keys, kafka,
                                                 args.quiet_requests, only, ports))  # fmt: skip
    ratios = {name: s["quiet_tenant_p99_ratio"] for name, s in measured["scenarios"].items()}
    result = {
        "model": re.sub(r".*/", "", model),
        "quiet_tenant_p99_ratio": ratios,
        **forged,
        **burst_result,
        "targets": {
            "quiet_tenant_p99_ratio": 2.0,
            "quiet_failed": 0,
            "forged_answers_accepted": 0,
            "burst_with_hog_vs_alone": 2.0,
            "whole_batch_redeliveries": 0,
        },
        **measured,
    }
    if only:
        print(json.dumps(result, indent=1))
    else:
        write_result("fairness", result)


if __name__ == "__main__":
    main()
