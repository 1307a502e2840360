"""The grading service on the real broker and Redis, with real retrieval and a scripted model.

The backend answers like a model that knows nothing but reads its prompt: with rules in the
prompt it picks B, without it picks A. The fixture exams' answers are mostly B, so base, OPO and
oracle scores are known in advance and each path (retrieval, oracle rules, none) is checked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.grading.datasets import stage_dataset
from services.grading.metrics import ANSWERS, DUPLICATES
from services.grading.records import scoped_id
from services.grading.settings import GradingSettings
from services.grading.store import ExamStore
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.service import Key
from shared.settings import KafkaSettings, RedisSettings
from shared.testing.backends import ScriptedBackend
from shared.testing.topics import TopicReader
from shared.topics import EXAM_ANSWERS, EXAM_JOBS, EXAM_RESULTS
from tests.integration.helpers import alignstream_cli
from tests.samples import sample_rule

FIXTURES = Path(__file__).parents[1] / "fixtures"
ROOT = Path(__file__).parents[2]


class ReadsItsPrompt(ScriptedBackend):
    """B when the prompt carries rules, else A; ``delay`` seconds per answer."""

    model = "reads-its-prompt"

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls = 0

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        self.calls += 1
        await asyncio.sleep(self.delay)
        prompt = request.messages[-1]["content"]
        grounded = "Supplementary information" in prompt or "辅助信息" in prompt
        text = "The answer is (B)." if grounded else "A"
        return GenerationOutput(text=text, finish_reason="stop", prompt_tokens=9,
                                completion_tokens=5, ttft_ms=1.0)  # fmt: skip


class RepliesTwice(GenerationService):
    """Publishes every response twice, as a redelivery after a crash would."""

    async def publish_bodies(
        self,
        topic: str,
        bodies: Iterable[tuple[Key, bytes]],
        *,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        bodies = list(bodies)
        twice = None if headers is None else [*headers, *headers]
        await super().publish_bodies(topic, bodies + bodies, headers=twice)


def generation_settings(service_settings: dict[str, Any], prefix: str) -> GenerationSettings:
    return GenerationSettings(**service_settings, group_id=f"{prefix}.generation", max_in_flight=8)


async def acme_rule(ingest: IngestService) -> None:
    async with AlignstreamClient(ingest.settings.kafka) as client:
        await client.publish_rules([events.RuleUpsert(rule=sample_rule())], wait=True)


def job_for(dataset: str, **fields: Any) -> events.ExamJob:
    fields.setdefault(
        "strategies", (events.Strategy.BASE, events.Strategy.OPO, events.Strategy.ORACLE)
    )
    return events.ExamJob(tenant="acme", dataset=dataset, **fields)


def counted(metric: Counter) -> float:
    return sum(s.value for m in metric.collect() for s in m.samples if s.name.endswith("_total"))


def scores_of(result: events.ExamResult) -> dict[str, tuple[int, int]]:
    return {s.strategy.value: (s.correct, s.answered) for s in result.scores}


async def test_exam_job_end_to_end_with_duplicate_replies(
    ingest: IngestService,
    retrieval: RetrievalService,
    grading: GradingService,
    service_settings: dict[str, Any],
    prefix: str,
) -> None:
    await acme_rule(ingest)
    backend = ReadsItsPrompt()
    generation = RepliesTwice(generation_settings(service_settings, prefix), backend=backend)
    progress: list[events.ExamResult] = []
    graded_before, duplicates_before = counted(ANSWERS), counted(DUPLICATES)
    async with generation, AlignstreamClient(grading.settings.kafka) as client:
        result = await client.run_exam(job_for("exam_en.jsonl"), timeout_s=60,
                                       on_progress=progress.append)  # fmt: skip

    assert result.final
    assert result.status is events.JobStatus.DONE
    assert (result.total_questions, result.total_answers, result.answered) == (3, 9, 9)
    # base says A to every question (all expect B); OPO finds acme's rule and says B; oracle
    # has a principle for one question only.
    assert scores_of(result) == {"base": (0, 3), "opo": (3, 3), "oracle": (1, 3)}
    assert backend.calls == 9
    # every reply arrived twice; each was graded once, the copies counted as duplicates
    assert counted(ANSWERS) - graded_before == 9
    assert counted(DUPLICATES) - duplicates_before >= 9
    base_vs_opo = result.comparisons[0]
    assert (base_vs_opo.baseline, base_vs_opo.treatment) == (
        events.Strategy.BASE,
        events.Strategy.OPO,
    )
    assert (base_vs_opo.pairs, base_vs_opo.treatment_only, base_vs_opo.delta) == (3, 3, 1.0)
    assert progress[-1] == result
    assert len(progress) >= 2
    answered = [p.answered for p in progress]
    assert answered == sorted(answered)  # progress never goes back
    opo = next(s for s in result.scores if s.strategy is events.Strategy.OPO)
    assert {c.category for c in opo.categories} == {"refunds", "privacy", "safety"}

    store = grading._store()
    answers = await store.answers(scoped_id(result.tenant, result.job_id))
    assert len(answers) == 9
    cited = {a.question_id: a.grounded_in for a in answers if a.strategy is events.Strategy.OPO}
    assert all(refs == (events.RuleRef(rule_id="privacy-1", version=1),) for refs in cited.values())
    (record,) = await store.recent("acme")
    assert record.status is events.JobStatus.DONE
    assert record.dataset_name == "exam_en"


async def test_unreadable_dataset_fails_the_job_and_foreign_replies_are_dead_lettered(
    grading: GradingService, reader: TopicReader, client_broker: Any
) -> None:
    async with AlignstreamClient(grading.settings.kafka) as client:
        result = await client.run_exam(job_for("no_such_exam.csv"), timeout_s=20)
    assert result.final
    assert result.status is events.JobStatus.FAILED
    assert result.error is not None
    assert "no such file" in result.error

    stray = events.ChatResponse(request_id="r1", tenant="acme", text="A")
    await client_broker.publish(events.encode(stray), reader.name(EXAM_ANSWERS), key=b"k")
    (record,) = await reader.read(EXAM_ANSWERS, dlq=True, count=1)
    letter = events.DeadLetter.model_validate_json(record.value)
    assert letter.reason == "not_an_exam_reply"
    assert letter.service == "grading"


async def test_error_replies_are_retried_then_counted_as_errors(
    retrieval: RetrievalService,
    grading: GradingService,
    service_settings: dict[str, Any],
    prefix: str,
) -> None:
    class Fails(ReadsItsPrompt):
        async def generate(self, request: GenerationInput) -> GenerationOutput:
            self.calls += 1
            raise RuntimeError("model down")

    backend = Fails()
    generation = GenerationService(generation_settings(service_settings, prefix), backend=backend)
    async with generation, AlignstreamClient(grading.settings.kafka) as client:
        job = job_for("exam_social.csv", strategies=(events.Strategy.BASE,))
        result = await client.run_exam(job, timeout_s=30)
    (score,) = result.scores
    assert (score.answered, score.errors, score.correct) == (3, 3, 0)
    assert backend.calls == 3 * grading.settings.max_attempts


def grading_process(cli_env: dict[str, str], prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **cli_env,
        "ALIGNSTREAM_KAFKA_PARTITIONS_OVERRIDE": "2",
        "ALIGNSTREAM_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "ALIGNSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "200",
        "ALIGNSTREAM_GRADING_GROUP_ID": f"{prefix}.grading",
        "ALIGNSTREAM_GRADING_WINDOW": "2",
        "ALIGNSTREAM_GRADING_SWEEP_INTERVAL_S": "0.2",
        "ALIGNSTREAM_HTTP_HOST": "127.0.0.1",
    }
    command = [sys.executable, "-m", "services.cli", "serve", "grading"]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=quiet, stderr=quiet)


async def test_job_survives_kill_9_of_the_grading_service(
    retrieval: RetrievalService,
    service_settings: dict[str, Any],
    grading_settings: GradingSettings,
    kafka_settings: KafkaSettings,
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
    cli_env: dict[str, str],
    prefix: str,
) -> None:
    backend = ReadsItsPrompt(delay=0.3)
    generation = GenerationService(generation_settings(service_settings, prefix), backend=backend)
    store = ExamStore(redis_client, redis_settings.key_prefix)
    job = job_for("exam_zh.csv", strategies=(events.Strategy.BASE, events.Strategy.ORACLE))
    process = grading_process(cli_env, prefix)
    try:
        async with generation, AlignstreamClient(kafka_settings) as client:
            running = asyncio.create_task(client.run_exam(job, timeout_s=90))
            deadline = time.monotonic() + 60
            while (await store.counts(scoped_id(job.tenant, job.job_id)))[
                2
            ] < 2:  # some answers graded, most not
                assert time.monotonic() < deadline, "the grading process graded nothing"
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            killed_at = (await store.counts(scoped_id(job.tenant, job.job_id)))[2]
            assert killed_at < 8
            async with GradingService(grading_settings):  # a fresh instance resumes the job
                result = await running
    finally:
        if process.poll() is None:
            process.kill()
    assert (result.answered, result.total_answers) == (8, 8)
    # Without retrieval in the prompt the model says A; with the principle, B (answers: B B A B).
    assert scores_of(result) == {"base": (1, 4), "oracle": (2, 4)}
    answers = await store.answers(scoped_id(job.tenant, job.job_id))
    assert sorted((a.strategy.value, a.question_id) for a in answers) == sorted(
        (s, q) for s in ("base", "oracle") for q in ("q1", "q2", "q3", "q4")
    )


async def test_exam_cli_run_show_list(
    retrieval: RetrievalService,
    grading: GradingService,
    service_settings: dict[str, Any],
    cli_env: dict[str, str],
    prefix: str,
    tmp_path: Path,
) -> None:
    env = cli_env
    generation = GenerationService(
        generation_settings(service_settings, prefix), backend=ReadsItsPrompt()
    )
    async with generation:
        code, output = await alignstream_cli(
            env, "exam", "run", "--dataset", str(FIXTURES / "exam_social.csv"), "--tenant", "acme",
            "--strategy", "base,opo", "--out", str(tmp_path), "--timeout", "60",
        )  # fmt: skip
        refused_code, refused = await alignstream_cli(
            env, "exam", "run", "--dataset", str(FIXTURES / "exam_social.csv"), "--tenant", "acme",
            "--strategy", "base,oracle", "--timeout", "60",
        )  # fmt: skip
    assert code == 0, output
    # base answers A: right for question 1 only (Taboo); OPO (no rules in the memory) too
    result = events.ExamResult.model_validate_json((tmp_path / "result.json").read_text())
    assert scores_of(result) == {"base": (1, 3), "opo": (1, 3)}
    assert "opo vs base" in output
    # the file has no principles: the oracle would silently be the baseline, so it is refused
    assert refused_code != 0
    assert "the oracle strategy needs each question's principle" in " ".join(refused.split())
    markdown = (tmp_path / "result.md").read_text()
    assert "| base | 33.3 | 6.1-79.2 | 1 / 3 | 0 | 0 |" in markdown
    assert (tmp_path / "result.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, output = await alignstream_cli(env, "exam", "list", "--tenant", "acme")
    assert code == 0
    assert result.job_id in output
    assert "done" in output
    code, output = await alignstream_cli(env, "exam", "list", "--tenant", "beta")
    assert code == 0
    assert result.job_id not in output  # another tenant's jobs are not listed
    code, output = await alignstream_cli(env, "exam", "show", result.job_id, "--tenant", "acme")
    assert code == 0
    assert "33.3" in output
    code, output = await alignstream_cli(env, "exam", "show", result.job_id[:8], "--tenant", "acme")
    assert code == 0  # a unique start of the id is enough
    assert "33.3" in output
    code, output = await alignstream_cli(env, "exam", "show", result.job_id, "--tenant", "beta")
    assert code == 1
    assert "no exam job" in output
    code, output = await alignstream_cli(env, "exam", "show", "no-such-job", "--tenant", "acme")
    assert code == 1
    assert "no exam job" in output


async def test_exam_cancel_stops_a_running_job(
    grading: GradingService,
    kafka_settings: KafkaSettings,
    redis_settings: RedisSettings,
    cli_env: dict[str, str],
    exam_root: Path,
    reader: TopicReader,
) -> None:
    # No retrieval or generation runs: the job's questions wait, the job stays running.
    staged = stage_dataset(exam_root, "acme", FIXTURES / "exam_social.csv")
    job = events.ExamJob(tenant="acme", dataset=staged, strategies=(events.Strategy.BASE,))
    async with AlignstreamClient(kafka_settings) as client:
        await client.send(EXAM_JOBS, job)
        await client.flush()
    store = ExamStore(aioredis.Redis.from_url(redis_settings.url.get_secret_value()),
                      redis_settings.key_prefix)  # fmt: skip
    sid = scoped_id("acme", job.job_id)
    async with asyncio.timeout(30):
        while (record := await store.record_of(sid)) is None:  # noqa: ASYNC110 (polls Redis)
            await asyncio.sleep(0.1)
    assert record.status is events.JobStatus.RUNNING

    code, output = await alignstream_cli(
        cli_env, "exam", "cancel", job.job_id[:10], "--tenant", "acme"
    )
    assert code == 0, output
    assert f"job {job.job_id} cancelled after 0/3 answers" in output
    cancelled = await store.record_of(sid)
    assert cancelled is not None
    assert cancelled.status is events.JobStatus.CANCELLED
    assert sid not in await store.active()  # the sweep no longer sends its questions
    (final,) = await reader.read(
        EXAM_RESULTS, count=1,
        where=lambda r: events.ExamResult.model_validate_json(r.value).final,
    )  # fmt: skip
    assert events.ExamResult.model_validate_json(final.value).status is events.JobStatus.CANCELLED

    code, output = await alignstream_cli(cli_env, "exam", "cancel", job.job_id, "--tenant", "acme")
    assert code == 1
    assert "cancelled already" in output
    code, output = await alignstream_cli(cli_env, "exam", "cancel", job.job_id, "--tenant", "beta")
    assert code == 1
    assert "no exam job" in output
    await store.redis.aclose()


async def test_two_jobs_at_once_share_the_pipeline(
    ingest: IngestService,
    retrieval: RetrievalService,
    grading: GradingService,
    service_settings: dict[str, Any],
    prefix: str,
) -> None:
    await acme_rule(ingest)
    backend = ReadsItsPrompt(delay=0.1)
    generation = GenerationService(generation_settings(service_settings, prefix), backend=backend)
    zh = job_for("exam_zh.csv", strategies=(events.Strategy.BASE, events.Strategy.OPO), window=2)
    en = job_for("exam_en.jsonl", strategies=(events.Strategy.OPO,), window=2)
    async with generation, AlignstreamClient(grading.settings.kafka) as client:
        zh_result, en_result = await asyncio.gather(
            client.run_exam(zh, timeout_s=60), client.run_exam(en, timeout_s=60)
        )
    assert scores_of(zh_result) == {"base": (1, 4), "opo": (3, 4)}
    assert scores_of(en_result) == {"opo": (3, 3)}
    # Both ran at once: each started before the other finished.
    assert zh_result.started_at is not None
    assert en_result.started_at is not None
    zh_end = zh_result.started_at.timestamp() + zh_result.elapsed_s
    en_end = en_result.started_at.timestamp() + en_result.elapsed_s
    assert en_result.started_at.timestamp() < zh_end
    assert zh_result.started_at.timestamp() < en_end
    assert backend.calls == 11
