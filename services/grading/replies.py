"""Replies to exam questions: which item each answers (checked against the store), graded by
the job's task and stored once (``HSETNX``); error replies are resent until the item has used
its attempts."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from services.grading.asking import ITEM_KEY, JOB_KEY, request_id_for
from services.grading.datasets import ExamQuestion
from services.grading.metrics import ANSWERS, DUPLICATES, RESENDS
from services.grading.records import JobRecord, WorkItem, parse_item, scoped_id
from services.grading.scheduler import Scheduler
from services.grading.tasks import TASKS, BoundedJudge, Reply
from shared import events
from shared.dlq import PoisonMessage


class ReplyTarget(NamedTuple):
    """What an exam reply answers, checked against the store (``Replies.target``)."""

    job: JobRecord
    item: WorkItem
    question: ExamQuestion


@dataclass(frozen=True, slots=True)
class Replies:
    scheduler: Scheduler
    """Owns the store and the settings; refills the windows this frees."""
    judge: BoundedJudge | None

    async def take_all(self, replies: Sequence[tuple[ReplyTarget, events.ChatResponse]]) -> None:
        """Grade a batch of checked replies, then refill the windows they freed (now, not at
        the next sweep)."""
        # Concurrently: judged replies wait on a model; each item is stored atomically.
        changed = await asyncio.gather(*(self.take(target, reply) for target, reply in replies))
        touched = {t.job.sid for (t, _), took in zip(replies, changed, strict=True) if took}
        for sid in touched:
            await self.scheduler.advance(sid)

    async def target(
        self, response: events.ChatResponse, records: dict[str, JobRecord | None]
    ) -> ReplyTarget:
        """The job, item and question a reply answers; ``PoisonMessage`` when it answers none
        of the tenant's jobs: no exam metadata, an unknown job (another tenant's job id is
        unknown under this reply's tenant), an item that is not the job's, or a request id that
        is not the one the item was asked under. ``records`` caches job records per batch."""
        job_id, text = response.metadata.get(JOB_KEY), response.metadata.get(ITEM_KEY)
        if not job_id or not text:
            raise PoisonMessage("not_an_exam_reply", "no exam job/item metadata")
        sid = scoped_id(response.tenant, job_id)
        if sid not in records:
            records[sid] = await self.scheduler.store.record_of(sid)
        job = records[sid]
        if job is None:
            raise PoisonMessage("unknown_exam_job", f"tenant {response.tenant} has no exam job "
                                                    f"{job_id[:200]!r}")  # fmt: skip
        try:
            item = parse_item(text)
        except ValueError as exc:
            raise PoisonMessage("unknown_exam_item", str(exc)) from exc
        found = await self.scheduler.store.questions(sid, [item.question_id])
        if item.strategy not in job.job.strategies or not found:
            raise PoisonMessage("unknown_exam_item", f"{text[:200]!r} is not an item of the job")
        genuine = request_id_for(job.nonce, response.tenant, job_id, item)
        if not hmac.compare_digest(response.request_id, genuine):
            raise PoisonMessage(
                "wrong_request_id", f"{response.request_id!r} is not the request of {text[:200]!r}"
            )
        return ReplyTarget(job, item, found[0])

    async def take(self, target: ReplyTarget, response: events.ChatResponse) -> bool:
        """Grade and store one reply to a job's item; False when it changed nothing (the job
        is over, the item answered already or not pending)."""
        store = self.scheduler.store
        record, item, question = target
        if record.status is not events.JobStatus.RUNNING:
            DUPLICATES.inc()
            return False
        job_id = record.sid
        if not response.ok:
            attempt = await store.retry(
                job_id, item, time.time(), self.scheduler.settings.max_attempts
            )
            if attempt > 0:
                RESENDS.labels("error_reply").inc()
                await self.scheduler.send(record, [item])
                return True
            if attempt < 0:
                DUPLICATES.inc()
                return False
        attempts = await store.attempts(job_id, item)
        reply = Reply(record.job, question, item.strategy, response, attempts)
        answer = await TASKS[record.job.task].grade(reply, self.judge)
        if not await store.record(job_id, item, answer):
            DUPLICATES.inc()
            return False
        ANSWERS.labels(item.strategy.value, answer.outcome.value).inc()
        return True
