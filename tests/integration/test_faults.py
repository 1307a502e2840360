"""kill -9 of each service in turn, under load: nothing is lost, nothing is answered twice at the
client, every rule version ends indexed, and a running exam job finishes with each answer once.

The four services run as ``alignstream serve`` subprocesses; generation calls a local
OpenAI-compatible endpoint (the real openai client and HTTP path), so a restart takes seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.grading.records import scoped_id
from services.grading.store import ExamStore
from shared import events
from shared.client import AlignstreamClient
from shared.memory.schema import RuleSchema
from shared.redis import as_text
from shared.settings import KafkaSettings, RedisSettings
from shared.topic_tail import TopicTail
from shared.topics import CHAT_RESPONSES
from tests.integration.helpers import (
    FastModel,
    ServiceProcess,
    rule_versions,
    send_paced,
    service_env,
)

SERVICES = ("ingest", "retrieval", "generation", "grading")
REQUESTS = 2000
RULES, VERSIONS = 40, 5
FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def processes(
    cli_env: dict[str, str], prefix: str, fast_model: FastModel, tmp_path: Path
) -> dict[str, ServiceProcess]:
    env = service_env(cli_env, prefix, fast_model, SERVICES)
    return {name: ServiceProcess(name, env, tmp_path / f"{name}.log") for name in SERVICES}


def rule_stream() -> list[events.RuleUpsert]:
    return rule_versions(RULES, VERSIONS)


def question(i: int) -> events.ChatRequest:
    return events.ChatRequest(
        request_id=f"fault-{i}",
        tenant="acme",
        messages=(events.ChatMessage(role=events.Role.USER, content=f"May I share file {i}?"),),
    )


@pytest.mark.timeout(600)
async def test_kill_9_each_service_in_turn_under_load(
    processes: dict[str, ServiceProcess],
    kafka_settings: KafkaSettings,
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
) -> None:
    for process in processes.values():
        process.start()
    try:
        await asyncio.gather(*(p.ready() for p in processes.values()))
        figures = await _under_load(processes, kafka_settings, redis_settings, redis_client)
    finally:
        for process in processes.values():
            process.stop()
    print("\nkill -9 figures:", figures)


async def _under_load(
    processes: dict[str, ServiceProcess],
    kafka: KafkaSettings,
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
) -> dict[str, object]:
    questions = [question(i) for i in range(REQUESTS)]
    rules = rule_stream()
    store = ExamStore(redis_client, redis_settings.key_prefix)
    job = events.ExamJob(
        tenant="acme",
        dataset="exam_zh.csv",
        strategies=(events.Strategy.BASE, events.Strategy.OPO, events.Strategy.ORACLE),
    )
    wanted = {q.request_id for q in questions}
    received: Counter[str] = Counter()
    recovery: dict[str, float] = {}
    started = time.monotonic()
    async with (
        AlignstreamClient(kafka) as client,
        TopicTail(kafka, kafka.topics(CHAT_RESPONSES)) as responses,
    ):

        async def collect() -> None:
            while not wanted <= received.keys():
                for value in await responses.values():
                    response = events.ChatResponse.model_validate_json(value)
                    assert response.ok, response.error
                    received[response.request_id] += 1

        collecting = asyncio.create_task(collect())
        exam: asyncio.Task[events.ExamResult] | None = None
        per_phase, rules_per_phase = REQUESTS // len(SERVICES), len(rules) // len(SERVICES)
        for phase, victim in enumerate(SERVICES):
            chunk: list[events.Event] = [
                *questions[phase * per_phase : (phase + 1) * per_phase],
                *rules[phase * rules_per_phase : (phase + 1) * rules_per_phase],
            ]
            chunk.sort(key=lambda e: e.created_at)  # interleave questions and rule events
            half = len(chunk) // 2
            if victim == "grading":
                exam = asyncio.create_task(client.run_exam(job, timeout_s=240))
                await _until_graded(
                    store, scoped_id(job.tenant, job.job_id), 2
                )  # kill grading mid-job
            await send_paced(client, chunk[:half], per_s=400)
            processes[victim].kill()
            await send_paced(client, chunk[half:], per_s=400)
            processes[victim].start()
            recovery[victim] = round(await processes[victim].ready(), 1)
        await asyncio.wait_for(collecting, timeout=180)
        assert exam is not None
        result = await exam
    elapsed = time.monotonic() - started

    assert received.keys() == wanted
    duplicates = sum(received.values()) - len(wanted)
    schema = RuleSchema(redis_settings.key_prefix, dim=512, embedder="use")
    ledger = await redis_client.hgetall(schema.versions_key("acme"))
    assert {as_text(k): int(v) for k, v in ledger.items()} == {
        f"r{r}": VERSIONS for r in range(RULES)
    }
    for r in range(RULES):
        doc_version = await redis_client.hget(schema.doc_key("acme", f"r{r}"), "version")
        assert doc_version == str(VERSIONS).encode()
    assert (result.total_questions, result.total_answers) == (4, 12)  # 4 questions x 3
    answers = await store.answers(scoped_id(job.tenant, job.job_id))
    assert len({(a.strategy, a.question_id) for a in answers}) == len(answers) == 12
    return {
        "requests": REQUESTS,
        "answered_once_at_client": len(wanted),
        "duplicate_responses_deduplicated": duplicates,
        "rule_events": len(rules),
        "rules_at_latest_version": RULES,
        "exam_answers": len(answers),
        "restart_to_ready_s": recovery,
        "elapsed_s": round(elapsed, 1),
    }


async def _until_graded(store: ExamStore, job_id: str, count: int) -> None:
    async with asyncio.timeout(60):
        while (await store.counts(job_id))[2] < count:  # noqa: ASYNC110 (polls Redis)
            await asyncio.sleep(0.05)
