"""kill -9 of the broker itself, mid-stream, and its restart: no acknowledged rule event, chat
request or exam answer is lost, and the four services (``alignstream serve`` subprocesses) carry
on without manual action.

The broker is Tansu storing to a local S3 server (SeaweedFS), so what it acknowledged is on
storage when it dies; the ``memory://`` broker of the other tests keeps nothing and can only be
paused (``test_outages.py``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka.structs import RecordMetadata

from services.grading.records import scoped_id
from services.grading.store import ExamStore
from shared import events
from shared.client import AlignstreamClient
from shared.devstack.seaweed import SeaweedPorts, SeaweedServer
from shared.devstack.servers import TansuServer, free_port
from shared.kafka import ensure_topics
from shared.memory.schema import RuleSchema
from shared.redis import as_text
from shared.settings import KafkaSettings, RedisSettings
from shared.topic_tail import TopicTail
from shared.topics import CHAT_REQUESTS, CHAT_RESPONSES, RULES_EVENTS
from tests.integration.helpers import FastModel, ServiceProcess, rule_versions, service_env

SERVICES = ("ingest", "retrieval", "generation", "grading")
REQUESTS = 600
RULES, VERSIONS = 30, 4
DOWN_S = 2.0


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[TansuServer]:
    storage = SeaweedServer(tmp_path / "s3", SeaweedPorts.free())
    broker = TansuServer(tmp_path / "kafka", free_port(), storage=storage)
    storage.start(timeout_s=60)
    broker.start(timeout_s=30)
    yield broker
    broker.stop()
    storage.stop()


@pytest.fixture
async def broker_settings(durable_broker: TansuServer, prefix: str) -> KafkaSettings:
    settings = KafkaSettings(bootstrap=durable_broker.address, topic_prefix=f"{prefix}.",
                             partitions_override=2, session_timeout_ms=1000,
                             heartbeat_interval_ms=200)  # fmt: skip
    await ensure_topics(settings)
    return settings


def question(i: int) -> events.ChatRequest:
    text = f"May I share file {i}?"
    return events.ChatRequest(
        request_id=f"restart-{i}",
        tenant="acme",
        messages=(events.ChatMessage(role=events.Role.USER, content=text),),
    )


@pytest.mark.timeout(600)
async def test_broker_kill_9_and_restart_loses_nothing_acknowledged(
    durable_broker: TansuServer,
    broker_settings: KafkaSettings,
    cli_env: dict[str, str],
    fast_model: FastModel,
    prefix: str,
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    env = {**service_env(cli_env, prefix, fast_model, SERVICES),
           "KAFKA_BOOTSTRAP": broker_settings.bootstrap,
           "ALIGNSTREAM_KAFKA_TOPIC_PREFIX": broker_settings.topic_prefix}  # fmt: skip
    processes = {name: ServiceProcess(name, env, tmp_path / f"{name}.log") for name in SERVICES}
    for process in processes.values():
        process.start()
    try:
        await asyncio.gather(*(p.ready() for p in processes.values()))
        await _restart_under_load(durable_broker, broker_settings, redis_settings, redis_client)
        for process in processes.values():
            await process.ready(timeout_s=5)  # still up, and ready again
    finally:
        for process in processes.values():
            process.stop()


async def _restart_under_load(
    broker: TansuServer,
    kafka: KafkaSettings,
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
) -> None:
    questions = [question(i) for i in range(REQUESTS)]
    rules = rule_versions(RULES, VERSIONS)
    stream: list[events.Event] = [*questions, *rules]
    stream.sort(key=lambda e: e.created_at)  # interleaved, each rule's versions in order
    store = ExamStore(redis_client, redis_settings.key_prefix)
    job = events.ExamJob(
        tenant="acme",
        dataset="exam_zh.csv",
        strategies=(events.Strategy.BASE, events.Strategy.OPO, events.Strategy.ORACLE),
    )
    received: Counter[str] = Counter()
    async with (
        AlignstreamClient(kafka) as client,
        TopicTail(kafka, kafka.topics(CHAT_RESPONSES)) as responses,
    ):

        async def collect(wanted: set[str]) -> None:
            while not wanted <= received.keys():
                for value in await responses.values():
                    response = events.ChatResponse.model_validate_json(value)
                    assert response.ok, response.error
                    received[response.request_id] += 1

        exam = asyncio.create_task(client.run_exam(job, timeout_s=240))
        deliveries: list[tuple[events.Event, asyncio.Future[RecordMetadata]]] = []

        async def send_all() -> None:
            for item in stream:
                spec = RULES_EVENTS if isinstance(item, events.RuleUpsert) else CHAT_REQUESTS
                deliveries.append((item, await client.send(spec, item)))
                await asyncio.sleep(0.005)

        sending = asyncio.create_task(send_all())
        # Mid-stream and mid-job: some sends and some exam answers done, most not.
        exam_id = scoped_id(job.tenant, job.job_id)
        async with asyncio.timeout(60):
            while len(deliveries) < len(stream) // 5 or (await store.counts(exam_id))[2] < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polls Redis and the sender
        answered_before_kill = (await store.counts(exam_id))[2]
        sent_before_kill = len(deliveries)
        pid = broker.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(broker.start, 30.0)
        restarted = time.monotonic()
        await sending
        await asyncio.wait({d for _, d in deliveries}, timeout=60)
        acked = [
            item for item, delivery in deliveries if delivery.done() and not delivery.exception()
        ]
        acked_questions = {i.request_id for i in acked if isinstance(i, events.ChatRequest)}
        await asyncio.wait_for(collect(acked_questions), timeout=180)
        result = await exam
        recovered_s = time.monotonic() - restarted

    # A client started after the restart reads replies from the topic's end; this broker's S3
    # engine reports an early "latest" offset after a restart, so it reads older replies too and
    # must pick its own out of them.
    async with AlignstreamClient(kafka) as fresh:
        after = await fresh.ask([question(REQUESTS)], timeout_s=60)
    assert after[question(REQUESTS).request_id].ok

    # What the broker acknowledged was all processed: every acknowledged question answered, every
    # acknowledged rule version indexed (each rule at the newest acknowledged version).
    newest: dict[str, int] = {}
    for item in acked:
        if isinstance(item, events.RuleUpsert):
            newest[item.rule.rule_id] = max(newest.get(item.rule.rule_id, 0), item.rule.version)
    schema = RuleSchema(redis_settings.key_prefix, dim=512, embedder="use")
    deadline = time.monotonic() + 60
    while True:
        ledger = await redis_client.hgetall(schema.versions_key("acme"))
        if {as_text(k): int(v) for k, v in ledger.items()} == newest:
            break
        assert time.monotonic() < deadline, "acknowledged rule events not indexed"
        await asyncio.sleep(0.2)
    # The exam job that ran across the restart finished, each answer once.
    assert answered_before_kill < 12
    assert sent_before_kill < len(stream)
    assert (result.total_questions, result.total_answers) == (4, 12)
    answers = await store.answers(scoped_id(job.tenant, job.job_id))
    assert len({(a.strategy, a.question_id) for a in answers}) == len(answers) == 12
    # Sends are retried across a 2 s outage: nothing the client sent was refused.
    assert len(acked) == len(stream)
    print(f"\nbroker kill -9 after {sent_before_kill} sends and {answered_before_kill} exam "
          f"answers, {DOWN_S:.0f} s down, restarted from S3: {len(acked)}/{len(stream)} "
          f"sends acknowledged; {len(acked_questions)} questions answered "
          f"({sum(received.values()) - len(acked_questions)} duplicates), {len(newest)} rules "
          f"at their newest version, exam 12/12 answers once; all done {recovered_s:.1f} s "
          f"after the restart")  # fmt: skip
