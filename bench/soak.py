"""Soak: the generation service against a slow and failing model for several minutes, with a
bounded request loop; does its memory grow?

A local OpenAI-compatible model answers most calls after 20 ms, fails 10% (HTTP 500) and hangs
on 10% (past the 1 s request timeout). The client keeps ``--outstanding`` requests in flight and
sends a new one per response. Process RSS is sampled every 5 s; the baseline is the RSS after the
warm-up, measured in the same run, and the result reports the growth after it (MB and ratio) and
the slope of a least-squares line over the post-warm-up samples (MB/min).

    python -m bench.soak [--seconds 300] [--warmup 30] [--outstanding 64]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import private_stack, write_result
from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings, OpenAISettings
from shared import events
from shared.client import AlignstreamClient
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.testing.openai_server import ChatCompletionServer
from shared.topic_tail import TopicTail
from shared.topics import CHAT_GROUNDED, CHAT_RESPONSES


class FaultyModel(ChatCompletionServer):
    async def answer(self, messages: list[dict[str, str]]) -> str:
        # The request's number, wherever the prompt template put the question.
        number = int(re.findall(r"\d+", messages[-1]["content"])[-1])
        if number % 10 == 3:
            await asyncio.sleep(30)  # hangs past the request timeout
        if number % 10 == 7:
            raise RuntimeError("model crashed")
        await asyncio.sleep(0.02)
        return "An answer of moderate length. " * 8


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grounded(i: int) -> events.GroundedRequest:
    message = events.ChatMessage(role=events.Role.USER, content=f"Question number {i}")
    request = events.ChatRequest(request_id=f"soak-{i}", tenant="bench", messages=(message,),
                                 strategy=events.Strategy.BASE)  # fmt: skip
    return events.GroundedRequest(request=request, received_at=request.created_at)


async def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"], topic_prefix="soak.")
    await ensure_topics(kafka)
    model = FaultyModel()
    await model.start()  # stopped below, after the service
    settings = GenerationSettings(
        kafka=kafka, observability=ObservabilitySettings(http_host="127.0.0.1"),
        backend="openai", request_timeout_s=1.0, max_in_flight=32,
        openai=OpenAISettings(base_url=model.base_url, model="faulty", max_retries=0),
    )  # fmt: skip
    outcomes: Counter[str] = Counter()
    samples: list[tuple[float, float]] = []
    sent = 0
    async with (
        GenerationService(settings),
        AlignstreamClient(kafka) as client,
        TopicTail(kafka, kafka.topics(CHAT_RESPONSES), chat_path=True) as tail,
    ):
        started = time.monotonic()
        next_sample = started
        outstanding: set[str] = set()
        while time.monotonic() - started < args.seconds:
            while len(outstanding) < args.outstanding:
                item = grounded(sent)
                await client.send(CHAT_GROUNDED, item)
                outstanding.add(item.request.request_id)
                sent += 1
            await client.flush()
            for value in await tail.values(timeout_ms=50):
                response = events.ChatResponse.model_validate_json(value)
                if response.request_id in outstanding:
                    outstanding.discard(response.request_id)
                    kind = "ok" if response.ok else response.error.kind.value  # type: ignore[union-attr]
                    outcomes[kind] += 1
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - started, rss_mb()))
                next_sample += 5
    await model.stop()
    total = sum(outcomes.values())
    if outcomes["ok"] < total * 0.5:  # the model is meant to answer 80% of the calls
        raise RuntimeError(f"the soak's model answered too few calls: {dict(outcomes)}")
    after = [(t, m) for t, m in samples if t >= args.warmup]
    times = np.array([t for t, _ in after]) / 60
    mems = np.array([m for _, m in after])
    slope = float(np.polyfit(times, mems, 1)[0]) if len(after) > 2 else float("nan")
    return {
        "seconds": args.seconds,
        "outstanding": args.outstanding,
        "responses": dict(outcomes),
        "responses_per_s": round(total / args.seconds, 1),
        "rss_after_warmup_mb": round(float(mems[0]), 1),
        "rss_end_mb": round(float(mems[-1]), 1),
        "rss_max_mb": round(float(mems.max()), 1),
        "growth_after_warmup_mb": round(float(mems[-1] - mems[0]), 1),
        "growth_ratio": round(float(mems[-1] / mems[0]), 3),
        "slope_mb_per_min": round(slope, 2),
        "rss_samples": [(round(t, 1), round(m, 1)) for t, m in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--outstanding", type=int, default=64)
    args = parser.parse_args()
    with private_stack() as env:
        result = asyncio.run(run(args, env))
    write_result("soak", result)


if __name__ == "__main__":
    main()
