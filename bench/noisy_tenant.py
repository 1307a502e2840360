"""What the fairness bench's noisy tenant does, one behaviour per scenario, each until told to
stop; and the quiet tenant's steady traffic, measured."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from shared.topics import CHAT_REQUESTS

BIG_TEXT = ("Please check every clause of this contract for me. " * 2000)[:99_000]
"""Just under the gateway's 100k-character limit on a text."""
SLOW_TOKENS = 256


@dataclass
class Http:
    """One tenant's key on the gateway, counting the statuses of what it sent. Like the
    OpenAI clients, it waits out a 429's ``Retry-After`` before its next request."""

    session: aiohttp.ClientSession
    base_url: str
    key: str
    statuses: Counter[int] = field(default_factory=Counter)
    timings: list[dict[str, float]] = field(default_factory=list)
    """The pipeline's timings of each answered chat (queue wait, generation, total)."""

    async def _counted(self, reply: aiohttp.ClientResponse) -> int:
        self.statuses[reply.status] += 1
        if reply.status == 429:
            await asyncio.sleep(float(reply.headers.get("Retry-After", "1")))
        return reply.status

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def chat(self, text: str, *, max_tokens: int, model: str = "alignstream:base") -> int:
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": text}]}  # fmt: skip
        url = f"{self.base_url}/chat/completions"
        started = time.perf_counter()
        async with self.session.post(url, json=body, headers=self._headers()) as reply:
            payload = await reply.json() if reply.status == 200 else await reply.read()
        if isinstance(payload, dict):
            timings = payload["alignstream"]["timings"]
            # The time outside the gateway's own measure: the client, HTTP, the event loops.
            timings["at"] = time.time()  # wall clock: lined up with the broker probe
            timings["outside_gateway_ms"] = (time.perf_counter() - started) * 1000 - timings[
                "gateway_ms"
            ]
            self.timings.append(timings)
        return await self._counted(reply)

    async def check(self, text: str) -> int:
        url = f"{self.base_url}/rules/applicable"
        async with self.session.post(url, json={"text": text}, headers=self._headers()) as reply:
            await reply.read()
        return await self._counted(reply)

    async def dropped_stream(self) -> int:
        """Open a stream, read its first piece, leave."""
        body = {"model": "alignstream:base", "max_tokens": SLOW_TOKENS, "stream": True,
                "messages": [{"role": "user", "content": "Tell me a long story."}]}  # fmt: skip
        url = f"{self.base_url}/chat/completions"
        async with self.session.post(url, json=body, headers=self._headers()) as reply:
            if reply.status == 200:
                async for line in reply.content:
                    if line.startswith(b"data:"):
                        break
        return await self._counted(reply)


async def quiet_traffic(http: Http, requests: int, *, with_check: bool) -> dict[str, Any]:
    """Two clients asking one after another: chat latencies (and check latencies), failures."""
    chat_ms: list[float] = []
    check_ms: list[float] = []
    failed = 0
    left = iter(range(requests))

    async def client() -> None:
        nonlocal failed
        for i in left:
            started = time.perf_counter()
            status = await http.chat(f"Question {i}: may I return an opened item?",
                                     max_tokens=16, model="alignstream:opo")  # fmt: skip
            chat_ms.append((time.perf_counter() - started) * 1000)
            failed += status != 200
            if with_check:
                started = time.perf_counter()
                failed += await http.check(f"Question {i}: returns of opened items") != 200
                check_ms.append((time.perf_counter() - started) * 1000)

    http.timings.clear()
    await asyncio.gather(client(), client())
    parts = (
        "queue_ms",
        "ttft_ms",
        "generation_ms",
        "total_ms",
        "delivery_ms",
        "gateway_ms",
        "outside_gateway_ms",
    )
    pipeline = {name: [t[name] or 0.0 for t in http.timings] for name in parts}
    return {
        "chat_ms": chat_ms,
        "check_ms": check_ms,
        "failed": failed,
        "pipeline": pipeline,
        "raw": list(http.timings),
    }


Behaviour = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def _loops(count: int, once: Callable[[], Awaitable[Any]], pause_s: float = 0.0) -> Behaviour:
    async def run(stop: asyncio.Event) -> None:
        async def loop() -> None:
            while not stop.is_set():
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await once()
                await asyncio.sleep(pause_s)

        await asyncio.gather(*(loop() for _ in range(count)))

    return run


def slow_requests(noisy: list[Http]) -> Behaviour:
    """(a) Many long answers at once, from two keys: far more than the tenant's share."""

    def long_story(http: Http) -> Callable[[], Awaitable[int]]:
        return lambda: http.chat("Tell me a long story.", max_tokens=SLOW_TOKENS)

    per_key = [_loops(50, long_story(http), pause_s=0.2) for http in noisy]

    async def run(stop: asyncio.Event) -> None:
        await asyncio.gather(*(behaviour(stop) for behaviour in per_key))

    return run


def big_texts(noisy: Http) -> Behaviour:
    """(b) 100k-character texts to chat (searched by retrieval) and to the check endpoint."""
    chat = _loops(2, lambda: noisy.chat(BIG_TEXT, max_tokens=8, model="alignstream:opo"))
    check = _loops(4, lambda: noisy.check(BIG_TEXT))

    async def run(stop: asyncio.Event) -> None:
        await asyncio.gather(chat(stop), check(stop))

    return run


def dropped_streams(noisy: Http) -> Behaviour:
    """(c) Streams opened and dropped after their first piece, 16 at a time."""
    return _loops(16, noisy.dropped_stream)


def unpublishable_replies(kafka: KafkaSettings, tenant: str, sent: Counter[str]) -> Behaviour:
    """(d) Requests on the topic itself naming reply topics that do not exist, ~100/s."""

    async def run(stop: asyncio.Event) -> None:
        async with AlignstreamClient(kafka) as client:
            i = 0
            while not stop.is_set():
                for _ in range(10):
                    i += 1
                    question = events.ChatMessage(role=events.Role.USER, content="Long story?")
                    request = events.ChatRequest(
                        tenant=tenant, messages=(question,), strategy=events.Strategy.BASE,
                        reply_topic=kafka.topics.client_replies(f"nowhere-{i}"),
                        params=events.GenerationParams(max_tokens=SLOW_TOKENS),
                    )  # fmt: skip
                    await client.send(CHAT_REQUESTS, request)
                    sent["requests"] += 1
                await client.flush()
                await asyncio.sleep(0.1)

    return run
