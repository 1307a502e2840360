"""The chat path's fetch pacing: the busy wait while traffic flows, the idle wait after
``busy_for_s`` without it, and no change where it cannot or should not apply."""

from __future__ import annotations

import asyncio
import inspect
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from shared.fetch_pacing import FETCHER_WAIT, FetchPacer
from shared.settings import KafkaSettings

IDLE, BUSY, BUSY_FOR_S = 10, 2, 0.08


def consumer(wait: int = IDLE) -> SimpleNamespace:
    """The part of a started aiokafka consumer the pacer touches."""
    return SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=wait))


def pacer_of(target: Any, *, busy: int = BUSY) -> FetchPacer:
    return FetchPacer(lambda: target, idle_ms=IDLE, busy_ms=busy, busy_for_s=BUSY_FOR_S)


def test_aiokafka_builds_each_fetch_request_from_the_attribute_the_pacer_sets() -> None:
    assert f"self.{FETCHER_WAIT} = fetch_max_wait_ms" in inspect.getsource(Fetcher.__init__)
    assert f"self.{FETCHER_WAIT}," in inspect.getsource(Fetcher._get_actions_per_node)


async def test_traffic_switches_to_the_busy_wait_until_quiet_for_busy_for() -> None:
    target = consumer()
    pacer = pacer_of(target)
    pacer.traffic()
    assert target._fetcher._fetch_max_wait_ms == BUSY
    assert pacer.busy
    await asyncio.sleep(BUSY_FOR_S * 0.6)
    pacer.traffic()  # more traffic: the busy time counts from here
    await asyncio.sleep(BUSY_FOR_S * 0.6)
    assert target._fetcher._fetch_max_wait_ms == BUSY
    await asyncio.sleep(BUSY_FOR_S * 0.8)
    assert target._fetcher._fetch_max_wait_ms == IDLE
    assert not pacer.busy
    pacer.traffic()  # and busy again on the next traffic
    assert target._fetcher._fetch_max_wait_ms == BUSY
    pacer.close()


async def test_close_stops_the_timer() -> None:
    target = consumer()
    pacer = pacer_of(target)
    pacer.traffic()
    pacer.close()
    assert not pacer.busy
    await asyncio.sleep(BUSY_FOR_S * 1.5)
    assert target._fetcher._fetch_max_wait_ms == BUSY  # nothing fired after close


async def test_off_when_the_busy_wait_is_not_shorter() -> None:
    target = consumer()
    pacer = pacer_of(target, busy=IDLE)
    pacer.traffic()
    assert target._fetcher._fetch_max_wait_ms == IDLE
    assert not pacer.busy
    apache_kafka = KafkaSettings(chat_fetch_max_wait_ms=500, chat_fetch_busy_wait_ms=500)
    assert not FetchPacer.for_chat(apache_kafka, lambda: target).enabled


async def test_a_consumer_not_started_yet_is_left_alone_until_it_is() -> None:
    holder: dict[str, Any] = {"consumer": None}
    pacer = FetchPacer(lambda: holder["consumer"], idle_ms=IDLE, busy_ms=BUSY,
                       busy_for_s=BUSY_FOR_S)  # fmt: skip
    pacer.traffic()
    assert not pacer.busy
    holder["consumer"] = target = consumer()
    pacer.traffic()
    assert target._fetcher._fetch_max_wait_ms == BUSY
    pacer.close()


async def test_another_aiokafka_turns_pacing_off_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacer = pacer_of(SimpleNamespace(_fetcher=SimpleNamespace()))
    with caplog.at_level(logging.WARNING, logger="shared.fetch_pacing"):
        pacer.traffic()
        pacer.traffic()
    assert not pacer.enabled
    assert not pacer.busy
    assert len([r for r in caplog.records if "pacing is off" in r.getMessage()]) == 1


def test_defaults_pace_the_in_memory_broker() -> None:
    settings = KafkaSettings()
    pacer = FetchPacer.for_chat(settings, lambda: None)
    assert pacer.enabled
    assert (pacer.idle_ms, pacer.busy_ms) == (10, 2)
    assert pacer.busy_for_s == 1.0
