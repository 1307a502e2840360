"""The grading service: exam jobs -> questions through the pipeline -> graded answers -> results.

A job's questions go out a window at a time (``chat.requests``, reply topic ``exam.answers``);
each reply is graded and stored once (Redis ``HSETNX``), which frees a slot for the next question.
A sweep resends items whose reply is overdue, turns repeated failures into error answers and
resumes every active job after a restart. Progress and final results go to ``exam.results``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import NamedTuple

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Gauge
from pydantic import TypeAdapter

from services.grading.asking import (
    ITEM_KEY,
    JOB_KEY,
    check_oracle,
    exam_request,
    request_id_for,
)
from services.grading.datasets import (
    DatasetError,
    Exam,
    ExamQuestion,
    dataset_path,
    load_course_correction,
    load_exam,
)
from services.grading.grader import grade, grade_open, lost
from services.grading.judge.client import JUDGE_CALLS, JUDGMENTS, Judge, Verdict
from services.grading.judge.prompts import COURSE_CORRECTION
from services.grading.records import JobRecord, parse_item, scoped_id
from services.grading.results import exam_result
from services.grading.settings import GradingSettings
from services.grading.store import ExamStore
from shared import events
from shared.dlq import PoisonMessage
from shared.kafka import OversizedMessage, consumer_options
from shared.metrics import HANDLER_SECONDS, UNPUBLISHABLE
from shared.redis import make_redis
from shared.service import Service
from shared.topics import CHAT_REQUESTS, EXAM_ANSWERS, EXAM_JOBS, EXAM_RESULTS

log = logging.getLogger(__name__)

ANSWERS = Counter(
    "alignstream_exam_answers_total", "Graded exam answers, by outcome.", ["strategy", "outcome"]
)
DUPLICATES = Counter(
    "alignstream_exam_duplicate_replies_total", "Replies to items already graded (ignored)."
)
RESENDS = Counter("alignstream_exam_resends_total", "Questions sent again.", ["reason"])
ACTIVE_JOBS = Gauge("alignstream_exam_jobs_active", "Exam jobs running.")
ACCURACY = Gauge(
    "alignstream_exam_accuracy", "Accuracy of the latest job per dataset.", ["dataset", "strategy"]
)
PROGRESS = Gauge(
    "alignstream_exam_progress_ratio", "Share of the latest job's items answered.", ["dataset"]
)

JobAdapter: TypeAdapter[events.ExamJob] = TypeAdapter(events.ExamJob)
ResponseAdapter: TypeAdapter[events.ChatResponse] = TypeAdapter(events.ChatResponse)


class ReplyTarget(NamedTuple):
    """What an exam reply answers, checked against the store (``_reply_target``)."""

    job: JobRecord
    item: str
    strategy: events.Strategy
    question: ExamQuestion


class GradingService(Service):
    name = "grading"
    metrics = (
        ANSWERS,
        DUPLICATES,
        RESENDS,
        ACTIVE_JOBS,
        ACCURACY,
        PROGRESS,
        JUDGMENTS,
        JUDGE_CALLS,
    )

    def __init__(self, settings: GradingSettings) -> None:
        super().__init__(settings)
        self.settings: GradingSettings = settings
        self.jobs_inbox = self.make_inbox(EXAM_JOBS, JobAdapter)
        self.answers_inbox = self.make_inbox(EXAM_ANSWERS, ResponseAdapter)
        self.store: ExamStore | None = None
        self.judge: Judge | None = None
        self._judging = asyncio.Semaphore(settings.judge_concurrency)
        self._sweeper: asyncio.Task[None] | None = None
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._progress_at: dict[str, float] = {}
        options = consumer_options(settings.kafka, group_id=settings.group_id)
        self.broker.subscriber(
            self.topics(EXAM_JOBS), batch=True, max_records=16,
            ack_policy=AckPolicy.NACK_ON_ERROR, **options,
        )(self.on_jobs)  # fmt: skip
        self.broker.subscriber(
            self.topics(EXAM_ANSWERS), batch=True, max_records=settings.batch_max,
            batch_timeout_ms=5, ack_policy=AckPolicy.NACK_ON_ERROR, **options,
        )(self.on_answers)  # fmt: skip

    @classmethod
    def from_env(cls) -> GradingService:
        return cls(GradingSettings())

    async def on_start(self) -> None:
        self.store = ExamStore(make_redis(self.settings.redis), self.settings.redis.key_prefix)
        await self.store.redis.ping()
        if self.settings.judge.base_url is not None:
            self.judge = Judge(
                self.settings.judge, self.store.redis, self.settings.redis.key_prefix
            )

    async def on_running(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="grading-sweep")

    async def on_draining(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def on_stop(self) -> None:
        if self.judge is not None:
            await self.judge.close()
        if self.store is not None:
            await self.store.redis.aclose()

    def _store(self) -> ExamStore:
        assert self.store is not None, "service not started"
        return self.store

    # Jobs -------------------------------------------------------------------------------

    async def on_jobs(self, message: KafkaMessage) -> None:
        with HANDLER_SECONDS.labels(self.name, EXAM_JOBS.name).time():
            try:
                for _, job in await self.jobs_inbox.open_batch(message.raw_message):
                    await self.start_job(job)
            except Exception:
                # Redis or the broker failed: the batch is redelivered (starting a job twice
                # resumes it), after a pause so an outage is not a busy loop.
                await asyncio.sleep(self.settings.retry_backoff_s)
                raise

    async def start_job(self, job: events.ExamJob) -> None:
        """Load and queue a new job; a job seen before (redelivered) just resumes. A job that
        cannot start (its file is missing, unreadable or malformed) ends FAILED with the
        reason, never in a redelivery loop."""
        store = self._store()
        sid = scoped_id(job.tenant, job.job_id)
        if await store.record_of(sid) is None:
            try:
                exam = await asyncio.to_thread(self._load, job)
            except DatasetError as exc:
                record = await store.create_failed(job, str(exc))
                log.warning("exam job failed", extra={"job": sid, "error": str(exc)})
                await self._publish(exam_result(record, [], final=True))
                return
            questions = exam.questions if job.task != "mcq" else exam.sample(job.limit, job.seed)
            try:
                check_oracle(job, questions, job.dataset)
            except DatasetError as exc:
                record = await store.create_failed(job, str(exc))
                await self._publish(exam_result(record, [], final=True))
                return
            if await store.create(job, exam.name, questions):
                log.info("exam job started", extra={"job": sid, "questions": len(questions)})
        await self.advance(sid)

    def _load(self, job: events.ExamJob) -> Exam:
        if job.task == "course-correction" and self.judge is None:
            raise DatasetError("course-correction jobs need a judge (ALIGNSTREAM_JUDGE_BASE_URL)")
        path = dataset_path(self.settings.data_root, job.tenant, job.dataset)
        try:
            if job.task == "course-correction":
                return load_course_correction(path, job.prefill_words, limit=job.limit,
                                              seed=job.seed, name=job.dataset)  # fmt: skip
            return load_exam(path, job.dataset_format, name=job.dataset)
        except DatasetError:
            raise
        except Exception as exc:  # undecodable bytes, csv limits, I/O: the job fails
            raise DatasetError(f"{job.dataset}: cannot be read ({type(exc).__name__})") from exc

    # Answers ----------------------------------------------------------------------------

    async def on_answers(self, message: KafkaMessage) -> None:
        with HANDLER_SECONDS.labels(self.name, EXAM_ANSWERS.name).time():
            try:
                await self._take_replies(message)
            except Exception:
                # Grading is idempotent: the redelivered batch changes only what was missed.
                await asyncio.sleep(self.settings.retry_backoff_s)
                raise

    async def _take_replies(self, message: KafkaMessage) -> None:
        replies = []
        records: dict[str, JobRecord | None] = {}  # each job's record read once per batch
        for record, response in await self.answers_inbox.open_batch(message.raw_message):
            try:
                target = await self._reply_target(response, records)
            except PoisonMessage as exc:
                await self.answers_inbox.reject(record, exc)
                continue
            replies.append((target, response))
        # Concurrently: judged replies wait on a model; each item is stored atomically.
        changed = await asyncio.gather(
            *(self.take_reply(target, reply) for target, reply in replies)
        )
        touched = {t.job.sid for (t, _), took in zip(replies, changed, strict=True) if took}
        for sid in touched:  # refill the freed slots now, not at the next sweep
            await self.advance(sid)

    async def _reply_target(
        self, response: events.ChatResponse, records: dict[str, JobRecord | None]
    ) -> ReplyTarget:
        """The job, item and question a reply answers; ``PoisonMessage`` when it answers none of the
        tenant's jobs: no exam metadata, an unknown job (another tenant's job id is unknown
        under this reply's tenant), an item that is not the job's, or a request id that is not
        the one the item was asked under."""
        job_id, item = response.metadata.get(JOB_KEY), response.metadata.get(ITEM_KEY)
        if not job_id or not item:
            raise PoisonMessage("not_an_exam_reply", "no exam job/item metadata")
        sid = scoped_id(response.tenant, job_id)
        if sid not in records:
            records[sid] = await self._store().record_of(sid)
        job = records[sid]
        if job is None:
            raise PoisonMessage("unknown_exam_job", f"tenant {response.tenant} has no exam job "
                                                    f"{job_id[:200]!r}")  # fmt: skip
        try:
            strategy, question_id = parse_item(item)
        except ValueError as exc:
            raise PoisonMessage("unknown_exam_item", str(exc)) from exc
        found = await self._store().questions(sid, [question_id])
        if strategy not in job.job.strategies or not found:
            raise PoisonMessage("unknown_exam_item", f"{item[:200]!r} is not an item of the job")
        if response.request_id != request_id_for(response.tenant, job_id, item):
            raise PoisonMessage(
                "wrong_request_id", f"{response.request_id!r} is not the request of {item[:200]!r}"
            )
        return ReplyTarget(job, item, strategy, found[0])

    async def take_reply(self, target: ReplyTarget, response: events.ChatResponse) -> bool:
        """Grade and store one reply to a job's item; False when it changed nothing (the job
        is over, the item answered already or not pending)."""
        store = self._store()
        record, item, strategy, question = target
        if record.status is not events.JobStatus.RUNNING:
            DUPLICATES.inc()
            return False
        job_id = record.sid
        if not response.ok:
            attempt = await store.retry(job_id, item, time.time(), self.settings.max_attempts)
            if attempt > 0:
                RESENDS.labels("error_reply").inc()
                await self._send(record, [item])
                return True
            if attempt < 0:
                DUPLICATES.inc()
                return False
        attempts = await store.attempts(job_id, item)
        if question.prefill is not None:
            verdict = await self._judge_continuation(question.stem, question.prefill, response)
            answer = grade_open(question, strategy, response, verdict, attempts=attempts)
        else:
            answer = grade(record.job, question, strategy, response, attempts=attempts)
        if not await store.record(job_id, item, answer):
            DUPLICATES.inc()
            return False
        ANSWERS.labels(strategy.value, answer.outcome.value).inc()
        return True

    async def _judge_continuation(
        self, prompt: str, prefill: str, response: events.ChatResponse
    ) -> Verdict | None:
        """The judge's verdict on a course-correction reply; None for an error reply. A judge
        outage raises: the batch is redelivered (cached verdicts make the retry cheap)."""
        if not response.ok:
            return None
        assert self.judge is not None, "course-correction jobs start only with a judge"
        async with self._judging:
            return await self.judge.judge(
                COURSE_CORRECTION, prompt=prompt, prefill=prefill, continuation=response.text
            )

    # Progress ---------------------------------------------------------------------------

    async def advance(self, job_id: str) -> None:
        """Resend overdue items, refill the window, publish progress or the final result of
        the job stored under ``job_id`` (a store id: ``scoped_id``)."""
        store = self._store()
        async with self._locks[job_id]:
            record = await store.record_of(job_id)
            if record is None or record.status is not events.JobStatus.RUNNING:
                return
            now = time.time()
            resend = []
            overdue = await store.overdue(
                job_id, now - self.settings.resend_after_s, now - self.settings.unsent_after_s
            )
            for item in overdue:
                attempt = await store.retry(job_id, item, now, self.settings.max_attempts)
                if attempt > 0:
                    resend.append(item)
                    RESENDS.labels("overdue").inc()
                elif attempt == 0:
                    await self._give_up(record, item)
            window = record.job.window or self.settings.window
            await self._send(record, resend + await store.fill(job_id, window, now))
            todo, pending, _ = await store.counts(job_id)
            if todo == 0 and pending == 0:
                await self._finish(record)
            elif now - self._progress_at.get(job_id, 0.0) >= self.settings.progress_interval_s:
                self._progress_at[job_id] = now
                answers = await store.answers(job_id)
                await self._publish(exam_result(record, answers, final=False))

    async def _give_up(self, record: JobRecord, item: str) -> None:
        store = self._store()
        strategy, question_id = parse_item(item)
        (question,) = await store.questions(record.sid, [question_id])
        answer = lost(question, strategy, self.settings.max_attempts)
        if await store.record(record.sid, item, answer):
            ANSWERS.labels(strategy.value, answer.outcome.value).inc()

    async def _finish(self, record: JobRecord) -> None:
        store = self._store()
        answers = await store.answers(record.sid)
        done = record.model_copy(update={"status": events.JobStatus.DONE})
        # Publish first: a crash before ``finish`` republishes the same result on resume.
        await self._publish(exam_result(done, answers, final=True))
        await store.finish(record.sid)
        self._progress_at.pop(record.sid, None)
        self._locks.pop(record.sid, None)  # a finished job needs no lock: keep the map bounded
        log.info("exam job done", extra={"job": record.sid, "answers": len(answers)})

    async def _send(self, record: JobRecord, items: list[str]) -> None:
        if not items:
            return
        question_ids = {parse_item(item)[1] for item in items}
        questions = await self._store().questions(record.sid, question_ids)
        by_id = {q.question_id: q for q in questions}
        reply_topic = self.topics(EXAM_ANSWERS)
        bodies, sent = [], []
        for item in items:
            strategy, question_id = parse_item(item)
            request = exam_request(record.job, by_id[question_id], strategy, reply_topic)
            try:
                bodies.append((request.key, self.encode_bounded(request)))
                sent.append(item)
            except OversizedMessage as exc:  # e.g. a huge oracle principle: never sendable
                await self._unsendable(record, by_id[question_id], strategy, item, exc)
        await self.publish_bodies(self.topics(CHAT_REQUESTS), bodies)
        await self._store().sent(record.sid, sent)

    async def _unsendable(
        self,
        record: JobRecord,
        question: ExamQuestion,
        strategy: events.Strategy,
        item: str,
        exc: OversizedMessage,
    ) -> None:
        """An item whose request is too large to publish counts as an error answer at once."""
        UNPUBLISHABLE.labels(self.name, "exam_request").inc()
        answer = lost(question, strategy, 1).model_copy(
            update={"raw_text": f"question too large to send ({exc})"}
        )
        if await self._store().record(record.sid, item, answer):
            ANSWERS.labels(strategy.value, answer.outcome.value).inc()

    async def _publish(self, result: events.ExamResult) -> None:
        await self.publish_all(self.topics(EXAM_RESULTS), [(result.key, result)])
        PROGRESS.labels(result.dataset).set(result.answered / max(result.total_answers, 1))
        for score in result.scores:
            ACCURACY.labels(result.dataset, score.strategy.value).set(score.accuracy)

    # Sweep ------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            try:
                active = await self._store().active()
                ACTIVE_JOBS.set(len(active))
                for job_id in active:
                    await self.advance(job_id)
            except Exception:  # Redis or the broker is away: try again next round
                log.exception("exam sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_s)
