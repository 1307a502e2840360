"""Pipeline overhead of generation: the same requests through the raw engine and through Kafka
and the generation service, in one run, sharing one engine instance.

Reports throughput (completion tokens/s) of each at ``--requests`` concurrent requests, their
ratio (target >= 0.95) and the latency the pipeline adds (p50/p99 per request; target p50 <= 15
ms), in rounds that alternate the two paths; then the fixed cost alone: one request at a time,
raw and pipeline alternating, the paired difference per request; then the pipeline's floor: the
same rounds with an instant backend (no engine), what the hops and the Python around the engine
cost by themselves. Without ``--model`` it builds the tiny random-weight model (it isolates the
pipeline) and runs on CPU; pass a local model folder for a real one (``--label smollm2`` names
the result), and ``--gpu`` on a GPU machine.

    python -m bench.generation_overhead [--requests 64] [--max-tokens 32] [--model DIR --gpu]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench.common import percentiles, private_stack, write_result
from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput
from services.generation.backends.vllm_engine import VllmEngineBackend
from services.generation.prompts import build_prompt
from services.generation.settings import GenerationSettings, VllmSettings
from shared import events
from shared.client import AlignstreamClient
from shared.devstack.tiny_model import build_tiny_model
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.testing.backends import FollowsItsSystemPrompt
from shared.topic_tail import TopicTail, collect_responses
from shared.topics import CHAT_GROUNDED, CHAT_RESPONSES


def requests(n: int, max_tokens: int, offset: int = 0) -> list[events.GroundedRequest]:
    out = []
    for i in range(offset, offset + n):
        chat = events.ChatRequest(
            tenant="bench",
            messages=(
                events.ChatMessage(role=events.Role.USER, content=f"Question {i}: refunds?"),
            ),
            strategy=events.Strategy.BASE,
            params=events.GenerationParams(max_tokens=max_tokens, seed=i),
        )
        out.append(events.GroundedRequest(request=chat, received_at=chat.created_at))
    return out


async def raw(
    backend: VllmEngineBackend, items: list[events.GroundedRequest]
) -> tuple[float, list[float], int]:
    latencies: list[float] = []

    async def one(item: events.GroundedRequest) -> int:
        prompt = build_prompt(item)
        started = time.perf_counter()
        out = await backend.generate(
            GenerationInput(f"raw-{item.request.request_id}", prompt.messages, item.request.params)
        )
        latencies.append((time.perf_counter() - started) * 1000)
        return out.completion_tokens

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(i) for i in items)))
    return tokens / (time.perf_counter() - started), latencies, tokens


class Pipeline:
    """Requests in through ``chat.grounded``, answers out of ``chat.responses``: what a client
    of the generation service sees (one producer and one reader, kept open between rounds)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.tail = TopicTail(kafka, kafka.topics(CHAT_RESPONSES), chat_path=True)
        self.client = AlignstreamClient(kafka)

    async def __aenter__(self) -> Pipeline:
        await self.tail.start()
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.__aexit__(None, None, None)
        await self.tail.stop()

    async def run(self, items: list[events.GroundedRequest]) -> tuple[float, list[float], int]:
        sent: dict[str, float] = {}
        latencies: list[float] = []

        def arrived(response: events.ChatResponse) -> None:
            latencies.append((time.perf_counter() - sent[response.request_id]) * 1000)

        started = time.perf_counter()
        for item in items:
            sent[item.request.request_id] = time.perf_counter()
            await self.client.send(CHAT_GROUNDED, item)
        await self.client.flush()
        responses = await collect_responses(
            self.tail, sent, tenant="bench", timeout_s=600, on_response=arrived
        )
        elapsed = time.perf_counter() - started
        tokens = sum(r.usage.completion_tokens for r in responses.values())
        return tokens / elapsed, latencies, tokens


async def fixed_cost(
    backend: VllmEngineBackend, pipeline: Pipeline, pairs: int, max_tokens: int
) -> dict[str, object]:
    """One request at a time, alternating raw and pipeline: the paired difference is what the
    pipeline adds to each request, with no batching or queueing to hide or inflate it."""
    raw_ms, pipe_ms = [], []
    for i in range(pairs):
        (item,) = requests(1, max_tokens, offset=i)
        raw_ms.extend((await raw(backend, [item]))[1])
        pipe_ms.extend((await pipeline.run([item]))[1])
    return {
        "pairs": pairs,
        "raw_latency_ms": percentiles(raw_ms),
        "pipeline_latency_ms": percentiles(pipe_ms),
        "added_latency_ms": percentiles([p - r for p, r in zip(pipe_ms, raw_ms, strict=True)]),
    }


async def pipeline_floor(
    kafka: KafkaSettings, n: int, max_tokens: int, rounds: int
) -> dict[str, object]:
    """The same path with an instant backend and no engine: what the two Kafka hops and the
    service's and the client's own work cost a round of ``n`` concurrent requests (and one
    request alone). On its own topics and consumer group, beside the engine's service."""
    floor = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}floor."})
    await ensure_topics(floor)
    settings = GenerationSettings(
        kafka=floor,
        observability=ObservabilitySettings(http_host="127.0.0.1", http_port=0),
        group_id="bench-floor-generation",
    )
    async with (
        GenerationService(settings, backend=FollowsItsSystemPrompt()),
        Pipeline(floor) as pipeline,
    ):
        await pipeline.run(requests(n, max_tokens))  # warm-up
        concurrent, alone = [], []
        for _ in range(rounds):
            concurrent.extend((await pipeline.run(requests(n, max_tokens)))[1])
            alone.extend((await pipeline.run(requests(1, max_tokens)))[1])
    return {
        "backend": "instant (shared/testing/backends.py FollowsItsSystemPrompt)",
        "rounds": rounds,
        "concurrent_latency_ms": percentiles(concurrent),
        "one_request_latency_ms": percentiles(alone),
    }


async def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    model = args.model or str(build_tiny_model(Path(".alignstream/models/tiny-chat")))
    engine = VllmSettings(model=model) if args.gpu else VllmSettings(
        model=model, dtype="float32", enforce_eager=True, gpu_memory_utilization=0.3,
        max_model_len=1024, max_num_seqs=max(args.requests, 8),
    )  # fmt: skip
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
    await ensure_topics(kafka)
    backend = VllmEngineBackend(engine)
    settings = GenerationSettings(
        kafka=kafka, observability=ObservabilitySettings(http_host="127.0.0.1"), vllm=engine
    )
    async with GenerationService(settings, backend=backend), Pipeline(kafka) as pipeline:
        await raw(backend, requests(args.requests, args.max_tokens))  # warm-up (CPU kernels)
        await pipeline.run(requests(args.requests, args.max_tokens))
        rounds = []
        for _ in range(args.rounds):  # alternate to spread machine noise over both
            direct = await raw(backend, requests(args.requests, args.max_tokens))
            through = await pipeline.run(requests(args.requests, args.max_tokens))
            rounds.append((direct, through))
        alone = await fixed_cost(backend, pipeline, args.pairs, args.max_tokens)
    floor = await pipeline_floor(kafka, args.requests, args.max_tokens, args.rounds)
    raw_tps = sum(r[0][0] for r in rounds) / len(rounds)
    pipe_tps = sum(r[1][0] for r in rounds) / len(rounds)
    ratios = sorted(r[1][0] / r[0][0] for r in rounds)
    raw_lat = percentiles([x for r in rounds for x in r[0][1]])
    pipe_lat = percentiles([x for r in rounds for x in r[1][1]])
    return {
        "model": model,
        "device": "gpu" if args.gpu else "cpu",
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "raw_engine_tokens_per_s": round(raw_tps, 1),
        "pipeline_tokens_per_s": round(pipe_tps, 1),
        "ratio_pipeline_vs_raw": round(pipe_tps / raw_tps, 3),
        "ratio_by_round": [round(r, 3) for r in ratios],
        "ratio_median_of_rounds": round(ratios[len(ratios) // 2], 3),
        "raw_latency_ms": raw_lat,
        "pipeline_latency_ms": pipe_lat,
        "added_latency_p50_ms": round(pipe_lat["p50"] - raw_lat["p50"], 2),
        "added_latency_p99_ms": round(pipe_lat["p99"] - raw_lat["p99"], 2),
        "target_ratio": 0.95,
        "target_added_latency_p50_ms": 15,
        "one_request_at_a_time": alone,
        "pipeline_floor": floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--pairs", type=int, default=40, help="one-at-a-time pairs")
    parser.add_argument("--label", default="", help="suffix of the result's name (smollm2)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()
    with private_stack() as env:
        result = asyncio.run(run(args, env))
    name = f"generation_overhead_{'gpu' if args.gpu else 'cpu'}"
    write_result(f"{name}_{args.label}" if args.label else name, result)


if __name__ == "__main__":
    main()
