"""The grading service: exam jobs -> questions through the pipeline -> graded answers -> results.

Wiring only: ``exam.jobs`` feeds ``Jobs`` (load and queue), ``exam.answers`` feeds ``Replies``
(check, grade, store once), and ``Scheduler`` keeps each job's window full, resends overdue
items, resumes every active job after a restart and publishes to ``exam.results``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter

from services.grading.jobs import Jobs
from services.grading.judge.client import JUDGE_CALLS, JUDGMENTS, Judge
from services.grading.metrics import (
    ACCURACY,
    ACTIVE_JOBS,
    ANSWERS,
    DUPLICATES,
    PROGRESS,
    RESENDS,
)
from services.grading.records import JobRecord
from services.grading.replies import Replies
from services.grading.scheduler import Scheduler
from services.grading.settings import GradingSettings
from services.grading.store import ExamStore
from services.grading.tasks import BoundedJudge
from shared import events
from shared.dlq import PoisonMessage
from shared.redis import make_redis
from shared.service import Service, Subscription
from shared.topics import CHAT_REQUESTS, EXAM_ANSWERS, EXAM_JOBS, EXAM_RESULTS

JobAdapter: TypeAdapter[events.ExamJob] = TypeAdapter(events.ExamJob)
ResponseAdapter: TypeAdapter[events.ChatResponse] = TypeAdapter(events.ChatResponse)


@dataclass(frozen=True, slots=True)
class Grading:
    """The service's core once started: the store and what works on it."""

    store: ExamStore
    judge: Judge | None
    scheduler: Scheduler
    jobs: Jobs
    replies: Replies


class GradingService(Service):
    name = "grading"
    settings_class = GradingSettings
    metrics = (ANSWERS, DUPLICATES, RESENDS, ACTIVE_JOBS, ACCURACY, PROGRESS, JUDGMENTS,
               JUDGE_CALLS)  # fmt: skip

    def __init__(self, settings: GradingSettings) -> None:
        super().__init__(settings)
        self.settings: GradingSettings = settings
        self.core: Grading | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.jobs_inbox = self.subscribe(
            Subscription(EXAM_JOBS, JobAdapter, max_records=16, batch_timeout_ms=None),
            self.on_jobs,
        )
        self.answers_inbox = self.subscribe(
            Subscription(
                EXAM_ANSWERS, ResponseAdapter, max_records=settings.batch_max, batch_timeout_ms=5
            ),
            self.on_answers,
        )
        self.publishes(CHAT_REQUESTS, why="exam questions, a window at a time per job")
        self.publishes(EXAM_RESULTS)

    async def on_start(self) -> None:
        settings = self.settings
        store = ExamStore(make_redis(settings.redis), settings.redis.key_prefix)
        await store.redis.ping()
        judge = (
            Judge(settings.judge, store.redis, settings.redis.key_prefix)
            if settings.judge.base_url is not None
            else None
        )
        bounded = BoundedJudge(judge, settings.judge_concurrency) if judge is not None else None
        scheduler = Scheduler(store, settings, self)
        self.core = Grading(store, judge, scheduler, Jobs(scheduler, bounded),
                            Replies(scheduler, bounded))  # fmt: skip

    async def on_running(self) -> None:
        sweep = self._core().scheduler.sweep_forever()
        self._sweeper = asyncio.create_task(sweep, name="grading-sweep")

    async def is_live(self) -> bool:
        # The sweep resends lost questions and finishes jobs: without it jobs stall silently.
        return self._sweeper is None or not self._sweeper.done()

    async def on_draining(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def on_stop(self) -> None:
        if self.core is not None:
            if self.core.judge is not None:
                await self.core.judge.close()
            await self.core.store.redis.aclose()

    def _core(self) -> Grading:
        assert self.core is not None, "service not started"
        return self.core

    def _store(self) -> ExamStore:
        return self._core().store

    async def on_jobs(self, message: KafkaMessage) -> None:
        # Redis or the broker failing raises: the batch is redelivered after the back-off
        # (starting a job twice resumes it).
        for _, job in await self.jobs_inbox.open_batch(message.raw_message):
            await self._core().jobs.start(job)

    async def on_answers(self, message: KafkaMessage) -> None:
        # Grading is idempotent: a redelivered batch changes only what was missed.
        replies = self._core().replies
        checked = []
        records: dict[str, JobRecord | None] = {}  # each job's record read once per batch
        for record, response in await self.answers_inbox.open_batch(message.raw_message):
            try:
                checked.append((await replies.target(response, records), response))
            except PoisonMessage as exc:
                await self.answers_inbox.reject(record, exc)
        await replies.take_all(checked)
