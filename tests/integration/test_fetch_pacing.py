"""The chat path's fetch pacing against the real broker and aiokafka: the generation service's
consumer and a client's reply reader fetch with the long wait while idle, the short one while
answers flow, and the long one again after ``chat_fetch_busy_for_ms`` without traffic."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher
import pytest

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from shared import events
from shared.client import AlignstreamClient, TopicTail, collect_responses
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.testing.backends import FollowsItsSystemPrompt
from shared.topics import CHAT_GROUNDED, CHAT_RESPONSES

IDLE_MS, BUSY_MS, BUSY_FOR_MS = 40, 3, 600


@pytest.fixture
def fetch_waits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, int]]:
    """(time, topic, wait) of every fetch request this process's consumers build."""
    seen: list[tuple[float, str, int]] = []
    real = aiokafka_fetcher.FetchRequest

    def recording(max_wait_time: int, *args: Any, **kwargs: Any) -> Any:
        request = real(max_wait_time, *args, **kwargs)
        for topic, _ in request.topics:
            seen.append((time.monotonic(), topic, max_wait_time))
        return request

    monkeypatch.setattr(aiokafka_fetcher, "FetchRequest", recording)
    return seen


def waits_between(
    seen: list[tuple[float, str, int]], topic: str, start: float, end: float
) -> set[int]:
    return {wait for at, name, wait in seen if name == topic and start <= at < end}


def grounded(question: str) -> events.GroundedRequest:
    chat = events.ChatRequest(
        tenant="acme",
        messages=(events.ChatMessage(role=events.Role.USER, content=question),),
        strategy=events.Strategy.BASE,
    )
    return events.GroundedRequest(request=chat, received_at=chat.created_at)


async def test_chat_path_fetches_fast_only_while_answers_flow(
    kafka_settings: KafkaSettings,
    observability: ObservabilitySettings,
    prefix: str,
    fetch_waits: list[tuple[float, str, int]],
) -> None:
    kafka = kafka_settings.model_copy(update={"chat_fetch_max_wait_ms": IDLE_MS,
                                              "chat_fetch_busy_wait_ms": BUSY_MS,
                                              "chat_fetch_busy_for_ms": BUSY_FOR_MS})  # fmt: skip
    settings = GenerationSettings(kafka=kafka, observability=observability,
                                  group_id=f"{prefix}.generation")  # fmt: skip
    requests_topic, replies_topic = kafka.topics(CHAT_GROUNDED), kafka.topics(CHAT_RESPONSES)
    async with (
        GenerationService(settings, backend=FollowsItsSystemPrompt()),
        AlignstreamClient(kafka) as client,
        TopicTail(kafka, replies_topic, chat_path=True) as tail,
    ):
        idle_from = time.monotonic()
        await asyncio.sleep(0.5)
        idle_until = time.monotonic()
        # Idle: the service's consumer polls with the long wait (the tail fetches only when read).
        assert waits_between(fetch_waits, requests_topic, idle_from, idle_until) == {IDLE_MS}

        for round_ in range(3):  # answers flowing: each hop fetches with the short wait
            item = grounded(f"question {round_}")
            await client.send(CHAT_GROUNDED, item)
            await client.flush()
            await collect_responses(tail, [item.request.request_id], tenant="acme", timeout_s=30)
        answered = time.monotonic()
        await asyncio.sleep(0.2)
        busy_until = time.monotonic()
        assert waits_between(fetch_waits, requests_topic, answered, busy_until) == {BUSY_MS}
        assert BUSY_MS in waits_between(fetch_waits, replies_topic, idle_until, answered)

        # Quiet for longer than chat_fetch_busy_for_ms: back to the long wait.
        await asyncio.sleep(BUSY_FOR_MS / 1000 + 0.3)
        quiet_from = time.monotonic()
        await asyncio.sleep(0.3)
        assert waits_between(fetch_waits, requests_topic, quiet_from, time.monotonic()) == {IDLE_MS}
        await tail.values(timeout_ms=200)  # a read after the quiet: the tail is idle again
        assert waits_between(fetch_waits, replies_topic, quiet_from, time.monotonic()) == {IDLE_MS}
