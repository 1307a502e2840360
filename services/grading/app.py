"""The grading service: exam jobs -> questions through the pipeline -> graded answers -> results;
research jobs (DRPO, C2-SYN, IterAlign) -> progress and results.

Wiring only: ``exam.jobs`` feeds ``Jobs`` (load and queue), ``exam.answers`` feeds ``Replies``
(check, grade, store once), and ``Scheduler`` keeps each job's window full, resends overdue
items, resumes every active job after a restart and publishes to ``exam.results``.
``research.jobs`` feeds the ``ResearchRunner`` (one task per job, resumed from its checkpoints
after a restart), which publishes to ``research.progress``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from pydantic import TypeAdapter

from services.grading.candidates import CandidateEvidence
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
from services.grading.research.wiring import Research, start_research
from services.grading.scheduler import Scheduler
from services.grading.settings import GradingSettings
from services.grading.store import ExamStore
from services.grading.tasks import BoundedJudge
from shared import events
from shared.dlq import PoisonMessage
from shared.embedders import Embedder
from shared.redis import make_redis
from shared.service import Service
from shared.subscription import Batch, Subscription
from shared.topics import (
    CHAT_REQUESTS,
    EXAM_ANSWERS,
    EXAM_JOBS,
    EXAM_RESULTS,
    RESEARCH_JOBS,
    RESEARCH_PROGRESS,
)

JobAdapter: TypeAdapter[events.ExamJob] = TypeAdapter(events.ExamJob)
ResponseAdapter: TypeAdapter[events.ChatResponse] = TypeAdapter(events.ChatResponse)
ResearchAdapter: TypeAdapter[events.ResearchJob] = TypeAdapter(events.ResearchJob)


@dataclass(frozen=True, slots=True)
class Grading:
    """The service's core once started: the store and what works on it."""

    store: ExamStore
    judge: Judge | None
    scheduler: Scheduler
    jobs: Jobs
    replies: Replies
    research: Research


class GradingService(Service):
    name = "grading"
    settings_class = GradingSettings
    metrics = (ANSWERS, DUPLICATES, RESENDS, ACTIVE_JOBS, ACCURACY, PROGRESS, JUDGMENTS,
               JUDGE_CALLS)  # fmt: skip

    def __init__(self, settings: GradingSettings, *, embedder: Embedder | None = None) -> None:
        super().__init__(settings)
        self.settings: GradingSettings = settings
        self.embedder = embedder
        """Research jobs that search the memory (discovery) use it; None: the configured
        embedder, started when a job first needs it."""
        self.core: Grading | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._research_sweeper: asyncio.Task[None] | None = None
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
        self.research_inbox = self.subscribe(
            # A group of its own: joining the exam consumers' group would rebalance them.
            Subscription(
                RESEARCH_JOBS,
                ResearchAdapter,
                max_records=16,
                batch_timeout_ms=None,
                group_id=f"{settings.group_id}-research",
            ),
            self.on_research,
        )
        self.publishes(CHAT_REQUESTS, why="exam questions, a window at a time per job")
        self.publishes(EXAM_RESULTS)
        self.publishes(RESEARCH_PROGRESS)

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
        evidence = CandidateEvidence(store.redis, settings.redis.key_prefix)
        scheduler = Scheduler(store, settings, self, evidence)
        research = await start_research(settings, store.redis, judge, self, self.embedder)
        self.core = Grading(store, judge, scheduler, Jobs(scheduler, bounded),
                            Replies(scheduler, bounded), research)  # fmt: skip

    async def on_running(self) -> None:
        sweep = self._core().scheduler.sweep_forever()
        self._sweeper = asyncio.create_task(sweep, name="grading-sweep")
        research = self._core().research.runner.sweep_forever(self.settings.research_lease_s / 3)
        self._research_sweeper = asyncio.create_task(research, name="research-sweep")

    async def is_live(self) -> bool:
        # The sweeps resend lost questions, finish jobs and resume research jobs: without them
        # jobs stall silently.
        return all(s is None or not s.done() for s in (self._sweeper, self._research_sweeper))

    async def on_draining(self) -> None:
        for sweeper in (self._sweeper, self._research_sweeper):
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
        if self.core is not None:
            await self.core.research.runner.stop()

    async def on_stop(self) -> None:
        if self.core is not None:
            await self.core.research.close()
            if self.core.judge is not None:
                await self.core.judge.close()
            await self.core.store.redis.aclose()

    def _core(self) -> Grading:
        assert self.core is not None, "service not started"
        return self.core

    def _store(self) -> ExamStore:
        return self._core().store

    async def on_jobs(self, batch: Batch[events.ExamJob]) -> None:
        # Redis or the broker failing raises: the batch is redelivered after the back-off
        # (starting a job twice resumes it).
        for job in batch.events:
            await self._core().jobs.start(job)

    async def on_research(self, batch: Batch[events.ResearchJob]) -> None:
        # Submitting a job seen before resumes it (or republishes its end): redelivery is safe.
        for research_job in batch.events:
            await self._core().research.runner.submit(research_job)

    async def on_answers(self, batch: Batch[events.ChatResponse]) -> None:
        # Grading is idempotent: a redelivered batch changes only what was missed.
        replies = self._core().replies
        checked = []
        records: dict[str, JobRecord | None] = {}  # each job's record read once per batch
        for record, response in batch.opened:
            try:
                checked.append((await replies.target(response, records), response))
            except PoisonMessage as exc:
                await self.answers_inbox.reject(record, exc)
        await replies.take_all(checked)
