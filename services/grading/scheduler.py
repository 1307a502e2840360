"""The window of each running job: send items, resend overdue ones, give up on lost ones,
publish progress and the final result.

A job's questions go out a window at a time (``chat.requests``, reply topic ``exam.answers``);
each graded reply frees a slot. ``advance`` is the one step every trigger runs (a new job, a
batch of replies, the periodic sweep); it is idempotent, and serialized per job in this process
(the store's Lua moves keep replicas from double-sending).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from services.grading.asking import exam_request
from services.grading.candidates import CandidateEvidence
from services.grading.datasets import ExamQuestion
from services.grading.grader import lost
from services.grading.metrics import ACCURACY, ACTIVE_JOBS, ANSWERS, PROGRESS, RESENDS
from services.grading.records import JobRecord, WorkItem
from services.grading.results import exam_result
from services.grading.settings import GradingSettings
from services.grading.store import ExamStore
from shared import events
from shared.kafka import OversizedMessage
from shared.metrics import UNPUBLISHABLE
from shared.service import Publisher
from shared.topics import CHAT_REQUESTS, EXAM_ANSWERS, EXAM_RESULTS

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        store: ExamStore,
        settings: GradingSettings,
        out: Publisher,
        evidence: CandidateEvidence | None = None,
    ) -> None:
        self.store = store
        self.evidence = evidence
        self.settings = settings
        self.out = out
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._progress_at: dict[str, float] = {}

    async def advance(self, job_id: str) -> None:
        """Resend overdue items, refill the window, publish progress or the final result of
        the job stored under ``job_id`` (a store id: ``scoped_id``)."""
        store = self.store
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
            await self.send(record, resend + await store.fill(job_id, window, now))
            todo, pending, _ = await store.counts(job_id)
            if todo == 0 and pending == 0:
                await self._finish(record)
            elif now - self._progress_at.get(job_id, 0.0) >= self.settings.progress_interval_s:
                self._progress_at[job_id] = now
                answers = await store.answers(job_id)
                await self.publish(exam_result(record, answers, final=False))

    async def sweep_forever(self) -> None:
        """Advance every active job each ``sweep_interval_s`` (resumes jobs after a restart)."""
        while True:
            try:
                active = await self.store.active()
                ACTIVE_JOBS.set(len(active))
                for job_id in active:
                    await self.advance(job_id)
            except Exception:  # Redis or the broker is away: try again next round
                log.exception("exam sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def send(self, record: JobRecord, items: list[WorkItem]) -> None:
        if not items:
            return
        questions = await self.store.questions(record.sid, {item.question_id for item in items})
        by_id = {q.question_id: q for q in questions}
        reply_topic = self.out.topics(EXAM_ANSWERS)
        bodies, sent = [], []
        for item in items:
            question = by_id[item.question_id]
            request = exam_request(record.job, question, item.strategy, reply_topic,
                                   nonce=record.nonce)  # fmt: skip
            try:
                bodies.append((request.key, self.out.encode_bounded(request)))
                sent.append(item)
            except OversizedMessage as exc:  # e.g. a huge oracle principle: never sendable
                await self._unsendable(record, question, item, exc)
        await self.out.publish_bodies(self.out.topics(CHAT_REQUESTS), bodies)
        await self.store.sent(record.sid, sent)

    async def publish(self, result: events.ExamResult) -> None:
        await self.out.publish_all(self.out.topics(EXAM_RESULTS), [result])
        PROGRESS.labels(result.dataset).set(result.answered / max(result.total_answers, 1))
        for score in result.scores:
            ACCURACY.labels(result.dataset, score.strategy.value).set(score.accuracy)

    async def _give_up(self, record: JobRecord, item: WorkItem) -> None:
        (question,) = await self.store.questions(record.sid, [item.question_id])
        answer = lost(question, item.strategy, self.settings.max_attempts)
        if await self.store.record(record.sid, item, answer):
            ANSWERS.labels(item.strategy.value, answer.outcome.value).inc()

    async def _finish(self, record: JobRecord) -> None:
        answers = await self.store.answers(record.sid)
        done = record.model_copy(update={"status": events.JobStatus.DONE})
        # Publish first: a crash before ``finish`` republishes the same result on resume.
        result = exam_result(done, answers, final=True)
        await self.publish(result)
        if self.evidence is not None:  # before ``finish``: a crash records it on resume
            await self.evidence.record(done.job, result)
        await self.store.finish(record.sid)
        self._progress_at.pop(record.sid, None)
        self._locks.pop(record.sid, None)  # a finished job needs no lock: keep the map bounded
        log.info("exam job done", extra={"job": record.sid, "answers": len(answers)})

    async def _unsendable(
        self, record: JobRecord, question: ExamQuestion, item: WorkItem, exc: OversizedMessage
    ) -> None:
        """An item whose request is too large to publish counts as an error answer at once."""
        UNPUBLISHABLE.labels(self.out.name, "exam_request").inc()
        answer = lost(question, item.strategy, 1).model_copy(
            update={"raw_text": f"question too large to send ({exc})"}
        )
        if await self.store.record(record.sid, item, answer):
            ANSWERS.labels(item.strategy.value, answer.outcome.value).inc()
