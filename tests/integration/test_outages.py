"""Outages of the servers the services depend on: the broker stops answering for 10 s, and Redis
is killed -9 mid-stream and restarted from its AOF. The services recover without manual action
and nothing acknowledged is lost. Each test has its own broker or Redis, so the session's are
untouched."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.devstack.servers import TansuServer, ValkeyServer, free_port
from shared.embedders.use import UniversalSentenceEncoder
from shared.kafka import ensure_topics
from shared.memory.schema import RuleSchema
from shared.redis import as_text, make_redis
from shared.settings import KafkaSettings, RedisSettings
from shared.testing.backends import ScriptedBackend
from shared.topic_tail import TopicTail, collect_responses
from shared.topics import CHAT_RESPONSES
from tests.integration.helpers import send_paced
from tests.samples import sample_rule


class EchoBackend(ScriptedBackend):
    async def generate(self, request: GenerationInput) -> GenerationOutput:
        return GenerationOutput(text="ok", finish_reason="stop")


def question(i: int) -> events.ChatRequest:
    text = f"May I share customer record {i}?"
    message = events.ChatMessage(role=events.Role.USER, content=text)
    return events.ChatRequest(request_id=f"q{i}", tenant="acme", messages=(message,))


def upsert(i: int, version: int = 1) -> events.RuleUpsert:
    text = f"Customer record {i} (version {version}) may not be shared."
    return events.RuleUpsert(rule=sample_rule(rule_id=f"r{i}", version=version, text=text))


async def pipeline(
    settings: dict[str, Any], prefix: str, embedder: UniversalSentenceEncoder
) -> tuple[IngestService, RetrievalService, GenerationService]:
    return (
        IngestService(IngestSettings(**settings, group_id=f"{prefix}.ingest"), embedder=embedder),
        RetrievalService(
            RetrievalSettings(**settings, group_id=f"{prefix}.retrieval"), embedder=embedder
        ),
        GenerationService(
            GenerationSettings(**settings, group_id=f"{prefix}.generation"), backend=EchoBackend()
        ),
    )


async def ledger(client: aioredis.Redis, prefix: str) -> dict[str, int]:
    raw = await client.hgetall(RuleSchema(prefix, 512, "use").versions_key("acme"))
    return {as_text(k): int(v) for k, v in raw.items()}


# ------------------------------------------------------------------------- broker outage


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[TansuServer]:
    server = TansuServer(tmp_path / "kafka", free_port())
    server.state_dir.mkdir()
    server.start(timeout_s=30)
    yield server
    pid = server.pid()
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
    server.stop()


@pytest.mark.timeout(300)
async def test_services_recover_from_a_10s_broker_outage(
    own_broker: TansuServer,
    service_settings: dict[str, Any],
    prefix: str,
    use_embedder: UniversalSentenceEncoder,
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
) -> None:
    kafka = KafkaSettings(bootstrap=own_broker.address, partitions_override=2,
                          session_timeout_ms=1000, heartbeat_interval_ms=200,
                          request_timeout_ms=3000)  # fmt: skip
    await ensure_topics(kafka)
    settings = {**service_settings, "kafka": kafka}
    pid = own_broker.pid()
    assert pid is not None
    before = [question(i) for i in range(100)] + [upsert(i) for i in range(20)]
    during = [question(i) for i in range(100, 200)] + [upsert(i) for i in range(20, 40)]
    during.sort(key=lambda e: e.created_at)
    ingest, retrieval, generation = await pipeline(settings, prefix, use_embedder)
    async with (
        ingest, retrieval, generation,
        AlignstreamClient(kafka) as client,
        TopicTail(kafka, kafka.topics(CHAT_RESPONSES)) as tail,
    ):  # fmt: skip
        await send_paced(client, before, per_s=500)
        await collect_responses(tail, {f"q{i}" for i in range(100)}, tenant="acme", timeout_s=60)
        sending = asyncio.create_task(send_paced(client, during, per_s=20))  # spans the outage
        await asyncio.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)  # the broker stops answering: requests time out (3 s)
        await asyncio.sleep(10.0)
        os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        await sending  # flushed
        got = await collect_responses(
            tail, {f"q{i}" for i in range(100, 200)}, tenant="acme", timeout_s=120
        )
        recovered_s = time.monotonic() - resumed
        for service in (ingest, retrieval, generation):
            assert await service.is_ready(), service.name
        # While ingest still runs: on a loaded machine it may index the last of them after the
        # answers are in (nothing would index them once it has stopped).
        deadline = time.monotonic() + 60
        wanted = {f"r{i}": 1 for i in range(40)}
        while await ledger(redis_client, redis_settings.key_prefix) != wanted:
            assert time.monotonic() < deadline, "rule events sent around the outage not indexed"
            await asyncio.sleep(0.2)
    assert all(response.ok for response in got.values())
    print(f"\nbroker outage 10 s: 100/100 requests sent around it answered, 40/40 rules indexed, "
          f"all answered {recovered_s:.1f} s after the broker resumed")  # fmt: skip


# ------------------------------------------------------------------------- Redis restart


@pytest.fixture
async def own_redis_client(own_redis: ValkeyServer) -> AsyncIterator[aioredis.Redis]:
    client = make_redis(RedisSettings(url=own_redis.address))
    yield client
    await client.aclose()


@pytest.mark.timeout(300)
async def test_services_wait_for_redis_to_reload_after_kill_9(
    own_redis: ValkeyServer,
    own_redis_client: aioredis.Redis,
    service_settings: dict[str, Any],
    kafka_settings: KafkaSettings,
    prefix: str,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    redis = RedisSettings(url=own_redis.address, key_prefix=prefix)
    settings = {**service_settings, "redis": redis}
    loaded = [upsert(i) for i in range(2000)]  # ~2 s of HNSW rebuild when Redis restarts
    updates = [upsert(i, version=2) for i in range(300)]
    questions = [question(i) for i in range(300)]
    stream: list[events.Event] = [*updates, *questions]
    stream.sort(key=lambda e: e.created_at)
    ingest, retrieval, generation = await pipeline(settings, prefix, use_embedder)
    async with (
        ingest, retrieval, generation,
        AlignstreamClient(kafka_settings) as client,
        TopicTail(kafka_settings, kafka_settings.topics(CHAT_RESPONSES)) as tail,
    ):  # fmt: skip
        await client.publish_rules(loaded, wait=True, timeout_s=120)
        sending = asyncio.create_task(send_paced(client, stream, per_s=100))
        await asyncio.sleep(1.5)
        pid = own_redis.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.sleep(1.0)
        own_redis.start(timeout_s=120)
        await sending  # flushed
        got = await collect_responses(
            tail, {q.request_id for q in questions}, tenant="acme", timeout_s=180
        )
        recovered_s = time.monotonic() - killed
    assert all(response.ok for response in got.values())
    # Every answer was grounded in a complete index: a half-loaded one would miss rules.
    assert all(len(response.grounded_in) > 0 for response in got.values())
    expected = {f"r{i}": 2 if i < 300 else 1 for i in range(2000)}
    assert await ledger(own_redis_client, prefix) == expected
    print(
        f"\nRedis kill -9 mid-stream: 2,300 rule events, none lost; 300/300 questions "
        f"answered from a complete index, the last {recovered_s:.1f} s after the kill"
    )
