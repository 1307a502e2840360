"""The services' broker starts its subscribers together: each waits in ``start`` until its
consumer group hands it partitions (seconds on Tansu), so one after another adds up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.kafka import make_broker
from shared.settings import KafkaSettings

TOPICS = ("rules.events", "rules.live", "exam.jobs")


async def handle(body: bytes) -> None:
    del body


def broker_with_subscribers(monkeypatch: pytest.MonkeyPatch, start: Any) -> Any:
    broker = make_broker(KafkaSettings(), client_id="test")
    for topic in TOPICS:
        broker.subscriber(topic, group_id=f"group-{topic}")(handle)
    monkeypatch.setattr(type(broker.subscribers[0]), "start", start)

    async def connect() -> None:
        return None

    monkeypatch.setattr(broker, "connect", connect)
    return broker


async def test_subscribers_join_their_groups_at_the_same_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joining: list[object] = []
    everyone_joining = asyncio.Event()

    async def start(subscriber: object) -> None:
        # Returns only once every subscriber is in start: one after another never gets there.
        joining.append(subscriber)
        if len(joining) == len(TOPICS):
            everyone_joining.set()
        await everyone_joining.wait()

    broker = broker_with_subscribers(monkeypatch, start)
    await asyncio.wait_for(broker.start(), timeout=5)
    assert len(joining) == len(TOPICS)
    assert broker.running


async def test_a_subscriber_that_fails_to_start_fails_the_start_and_stops_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cancelled: list[object] = []
    calls = 0

    async def start(subscriber: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionRefusedError("broker gone")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(subscriber)
            raise

    broker = broker_with_subscribers(monkeypatch, start)
    with pytest.raises(ConnectionRefusedError, match="broker gone"):
        await asyncio.wait_for(broker.start(), timeout=5)
    await asyncio.sleep(0)  # let the cancellations run
    assert len(cancelled) == len(TOPICS) - 1
    assert not broker.running
