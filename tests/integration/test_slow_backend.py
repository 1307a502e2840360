"""A slow and failing model behind the real openai client: hung calls become timeout responses,
failures become backend-error responses, each request gets exactly one response, and no more
calls run at once than ``max_in_flight`` (the consumer pauses instead of queueing without bound).
The memory side of this is the soak benchmark (``bench/soak.py``, 5 minutes)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings, OpenAISettings
from shared import events
from shared.client import AlignstreamClient
from shared.testing.openai_server import ChatCompletionServer
from shared.topic_tail import TopicTail, collect_responses
from shared.topics import CHAT_GROUNDED, CHAT_RESPONSES

REQUESTS = 200
MAX_IN_FLIGHT = 8


class FaultyModel(ChatCompletionServer):
    """``hang``: never answers in time; ``fail``: HTTP 500; else answers after 20 ms."""

    async def answer(self, messages: list[dict[str, str]]) -> str:
        question = messages[-1]["content"]
        if "hang" in question:
            await asyncio.sleep(30)
        if "fail" in question:
            raise RuntimeError("model crashed")
        await asyncio.sleep(0.02)
        return "fine"


@pytest.fixture
async def model() -> AsyncIterator[FaultyModel]:
    async with FaultyModel() as server:
        yield server


def kind_of(i: int) -> str:
    return "hang" if i % 10 == 3 else "fail" if i % 10 == 7 else "ok"


@pytest.mark.timeout(240)
async def test_hung_and_failing_calls_become_one_error_response_each(
    model: FaultyModel, service_settings: dict[str, Any], prefix: str
) -> None:
    settings = GenerationSettings(
        **service_settings,
        group_id=f"{prefix}.generation",
        backend="openai",
        openai=OpenAISettings(base_url=model.base_url, model="faulty", max_retries=0),
        request_timeout_s=1.0,
        max_in_flight=MAX_IN_FLIGHT,
    )
    requests = [
        events.ChatRequest(
            request_id=f"s{i}",
            tenant="acme",
            strategy=events.Strategy.BASE,
            messages=(events.ChatMessage(role=events.Role.USER, content=f"{kind_of(i)} {i}"),),
        )
        for i in range(REQUESTS)
    ]
    in_flight: list[float] = []

    async def sample() -> None:
        while True:
            in_flight.append(REGISTRY.get_sample_value("alignstream_generation_in_flight") or 0)
            await asyncio.sleep(0.01)

    async with GenerationService(settings), AlignstreamClient(settings.kafka) as client:
        grounded = [events.GroundedRequest(request=r, received_at=r.created_at) for r in requests]
        sampling = asyncio.create_task(sample())
        responses = await _ask_grounded(client, grounded)
        sampling.cancel()
    outcome = Counter(
        "ok" if r.ok else "hang" if r.error and r.error.kind is events.ErrorKind.TIMEOUT else "fail"
        for r in responses.values()
    )
    assert outcome == Counter(kind_of(i) for i in range(REQUESTS))
    assert max(in_flight) == MAX_IN_FLIGHT  # saturated, never above: the consumer paused
    print(
        f"\nslow/failing model: {dict(outcome)} over {REQUESTS} requests, at most "
        f"{max(in_flight):.0f} generations in flight"
    )


async def _ask_grounded(
    client: AlignstreamClient, grounded: list[events.GroundedRequest]
) -> dict[str, events.ChatResponse]:
    async with TopicTail(client.settings, client.topics(CHAT_RESPONSES)) as tail:
        for item in grounded:
            await client.send(CHAT_GROUNDED, item)
        await client.flush()
        ids = [g.request.request_id for g in grounded]
        return await collect_responses(tail, ids, tenant="acme", timeout_s=180)
