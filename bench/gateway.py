"""What the HTTP door costs: the same chat requests (a) straight to Kafka with the project's
client and (b) through the gateway's ``/v1/chat/completions``, in one run, against the same
retrieval and generation processes (one vLLM engine, the tiny model on CPU by default), at 1 and
at 64 concurrent clients, rounds alternated to spread machine noise over both.

At one client the two paths take turns request by request (paired: the difference is measured
at the same moment of the machine); at 64 they run whole rounds, alternated.

(a) publishes each ``ChatRequest`` with ``AlignstreamClient`` naming a reply topic of its own
and reads the answers with one ``TopicTail``, matched by request id: what the gateway itself
does, minus HTTP, authentication and rate limiting. Strategy ``base``: retrieval passes the
request on without a search, so the difference is the gateway alone.

Keys: ``gateway_added_p50_ms`` / ``gateway_added_p99_ms`` (one client: the latency the door
adds to a request; targets 5 and 20 ms) and ``gateway_vs_kafka_throughput_ratio`` (64 clients:
answers/s through the gateway over answers/s straight to Kafka; target 0.95).

    python -m bench.gateway [--requests 200] [--rounds 3] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import percentiles, private_stack, service_process, write_result
from shared import events
from shared.client import AlignstreamClient
from shared.devstack.servers import free_port
from shared.devstack.tiny_model import build_tiny_model
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings, RedisSettings
from shared.tenants import ApiKeys
from shared.topic_tail import TopicTail
from shared.topics import CHAT_REQUESTS, client_replies_spec

TENANT = "bench"
LEVELS = (1, 64)
Ask = Callable[[int], Awaitable[float]]
"""Send question ``i`` and wait for its answer; the latency in ms."""


def question(i: int) -> str:
    return f"Question {i}: may a customer return an opened item within 30 days?"


class KafkaPath:
    """Requests with the project's client; answers from one tail on an own reply topic."""

    def __init__(self, kafka: KafkaSettings, max_tokens: int) -> None:
        self.kafka = kafka
        self.max_tokens = max_tokens
        self.spec = client_replies_spec("bench-kafka")
        self.reply_topic = kafka.topics(self.spec)
        self.waiting: dict[str, asyncio.Future[events.ChatResponse]] = {}

    async def __aenter__(self) -> KafkaPath:
        await ensure_topics(self.kafka, [self.spec])
        self.client = await AlignstreamClient(self.kafka).__aenter__()
        self.tail = TopicTail(self.kafka, self.reply_topic, chat_path=True)
        await self.tail.start()
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        await self.tail.stop()
        await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        while True:
            for value in await self.tail.values(timeout_ms=50):
                response = events.ChatResponse.model_validate_json(value)
                future = self.waiting.pop(response.request_id, None)
                if future is not None and not future.done():
                    future.set_result(response)

    async def ask(self, i: int) -> float:
        request = events.ChatRequest(
            tenant=TENANT,
            messages=(events.ChatMessage(role=events.Role.USER, content=question(i)),),
            strategy=events.Strategy.BASE,
            params=events.GenerationParams(max_tokens=self.max_tokens, seed=i),
            reply_topic=self.reply_topic,
        )
        started = time.perf_counter()
        future = self.waiting[request.request_id] = asyncio.get_running_loop().create_future()
        await self.client.send(CHAT_REQUESTS, request)
        await self.client.flush()
        response = await asyncio.wait_for(future, 600)
        assert response.ok, response.error
        return (time.perf_counter() - started) * 1000


class GatewayPath:
    """Requests over HTTP with aiohttp (a load generator should not be the bottleneck: on two
    shared cores httpx's own CPU per request would be charged to the gateway)."""

    def __init__(self, base_url: str, key: str, max_tokens: int) -> None:
        self.url = f"{base_url}/chat/completions"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.max_tokens = max_tokens
        self.http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=128)
        self.http = aiohttp.ClientSession(connector=connector, headers=self.headers,
                                          timeout=aiohttp.ClientTimeout(total=600))  # fmt: skip

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def ask(self, i: int) -> float:
        messages = [{"role": "user", "content": question(i)}]
        body = {"model": "alignstream:base", "max_tokens": self.max_tokens, "seed": i,
                "temperature": 0, "messages": messages}  # fmt: skip
        assert self.http is not None
        started = time.perf_counter()
        async with self.http.post(self.url, json=body) as response:
            payload = await response.read()
            assert response.status == 200, payload
        return (time.perf_counter() - started) * 1000


async def measure(ask: Ask, requests: int, concurrency: int, first: int) -> dict[str, Any]:
    """``requests`` questions over ``concurrency`` clients, each asking one after another."""
    latencies: list[float] = []
    queue = iter(range(first, first + requests))

    async def client() -> None:
        for i in queue:
            latencies.append(await ask(i))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"answers_per_s": requests / elapsed, "latencies": latencies}


async def interleaved(paths: dict[str, Ask], count: int, first: int) -> dict[str, Any]:
    """One client, the two paths taking turns request by request (who goes first alternates):
    both see the same moment of the machine, so drift and noise cancel out of the difference."""
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for n in range(count):
        for name in names if n % 2 == 0 else reversed(names):
            latencies[name].append(await paths[name](first + 2 * n + names.index(name)))
    return latencies


def wait_for_http(url: str, key: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout_s}s")


async def make_key(redis: RedisSettings) -> str:
    keys = ApiKeys.from_settings(redis)
    await keys.open()
    # Its own rate, far above the gateway's default for keys without one (20/s).
    secret, _ = await keys.create(TENANT, label="bench", rate_limit_per_s=1e6)
    await keys.close()
    return secret


async def compare(
    args: argparse.Namespace, kafka: KafkaSettings, url: str, key: str
) -> dict[str, Any]:
    gateway = GatewayPath(url, key, args.max_tokens)
    await gateway.open()
    async with KafkaPath(kafka, args.max_tokens) as direct:
        paths: dict[str, Ask] = {"kafka": direct.ask, "gateway": gateway.ask}
        for ask in paths.values():  # warm-up: engine kernels, connections, caches
            await measure(ask, 64, 16, first=0)
        results: dict[str, Any] = {}
        first = 1000
        for level in args.levels:
            runs: dict[str, list[dict[str, Any]]] = {"kafka": [], "gateway": []}
            count = args.requests if level > 1 else max(100, args.requests // 2)
            for round_ in range(args.rounds):
                if level == 1:  # latency: paired, request by request
                    turns = await interleaved(paths, count, first)
                    for name, latencies in turns.items():
                        rate = 1000 * len(latencies) / sum(latencies)
                        runs[name].append({"answers_per_s": rate, "latencies": latencies})
                    first += 2 * count
                    continue
                order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
                for name in order:  # throughput: whole rounds, alternated
                    runs[name].append(await measure(paths[name], count, level, first))
                    first += count
            level_result: dict[str, Any] = {}
            for name, measured in runs.items():
                level_result[name] = {
                    "answers_per_s": round(
                        sum(m["answers_per_s"] for m in measured) / len(measured), 2
                    ),
                    "latency_ms": percentiles([x for m in measured for x in m["latencies"]]),
                    # The spread between rounds of one path: the noise floor of the difference.
                    "p50_ms_by_round": [percentiles(m["latencies"])["p50"] for m in measured],
                }
            k, g = level_result["kafka"], level_result["gateway"]
            level_result["added_p50_ms"] = round(g["latency_ms"]["p50"] - k["latency_ms"]["p50"], 2)
            level_result["added_p99_ms"] = round(g["latency_ms"]["p99"] - k["latency_ms"]["p99"], 2)
            level_result["throughput_ratio"] = round(g["answers_per_s"] / k["answers_per_s"], 3)
            if level == 1:
                kafka_ms = [x for m in runs["kafka"] for x in m["latencies"]]
                gateway_ms = [x for m in runs["gateway"] for x in m["latencies"]]
                pairs = [g_ms - k_ms for k_ms, g_ms in zip(kafka_ms, gateway_ms, strict=True)]
                level_result["paired_difference_ms"] = percentiles(pairs)
            results[str(level)] = level_result
    await gateway.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=256, help="per round at 64 clients")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--model", default=None, help="default: the tiny random-weight model")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")],
                        default=list(LEVELS), help="concurrent clients, e.g. 1,64")  # fmt: skip
    args = parser.parse_args()
    model = args.model or str(build_tiny_model(Path(".alignstream/models/tiny-chat")))
    port = free_port()
    with private_stack() as env:
        kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
        redis = RedisSettings(url=env["REDIS_URL"])
        asyncio.run(ensure_topics(kafka))
        key = asyncio.run(make_key(redis))
        engine = {"ALIGNSTREAM_VLLM_MODEL": model, "ALIGNSTREAM_VLLM_DTYPE": "float32",
                  "ALIGNSTREAM_VLLM_ENFORCE_EAGER": "true",
                  "ALIGNSTREAM_VLLM_MAX_MODEL_LEN": "1024",
                  "ALIGNSTREAM_VLLM_KV_CACHE_GIB": "1"}  # fmt: skip
        gateway_env = {"ALIGNSTREAM_GATEWAY_PORT": str(port),
                       "ALIGNSTREAM_GATEWAY_INSTANCE": "bench-gateway"}  # fmt: skip
        with (
            service_process("retrieval", env),
            service_process("generation", {**env, **engine}),
            service_process("gateway", {**env, **gateway_env}),
        ):
            url = f"http://127.0.0.1:{port}/v1"
            wait_for_http(f"{url}/models", key)
            levels = asyncio.run(compare(args, kafka, url, key))
    one, many = levels[str(args.levels[0])], levels[str(args.levels[-1])]
    result = {
        "model": model,
        "strategy": "base",
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "gateway_added_p50_ms": one["added_p50_ms"],
        "gateway_added_p99_ms": one["added_p99_ms"],
        "gateway_vs_kafka_throughput_ratio": many["throughput_ratio"],
        "targets": {
            "gateway_added_p50_ms": 5,
            "gateway_added_p99_ms": 20,
            "gateway_vs_kafka_throughput_ratio": 0.95,
        },
        "by_concurrency": levels,
    }
    write_result("gateway", result)


if __name__ == "__main__":
    main()
