"""Starting exam jobs: read the job's file (inside the tenant's data folder), choose its
questions and queue them; a job seen before (redelivered) just resumes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.grading.datasets import DatasetError, ExamQuestion, dataset_path
from services.grading.judge.client import NO_JUDGE_FIX
from services.grading.records import scoped_id
from services.grading.results import exam_result
from services.grading.scheduler import Scheduler
from services.grading.tasks import TASKS, BoundedJudge
from shared import events

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Jobs:
    scheduler: Scheduler
    """Owns the store and the settings; refills the windows this frees."""
    judge: BoundedJudge | None

    async def start(self, job: events.ExamJob) -> None:
        """Load and queue a new job; a job seen before (redelivered) just resumes. A job that
        cannot start (its file is missing, unreadable or malformed) ends FAILED with the
        reason, never in a redelivery loop."""
        sid = scoped_id(job.tenant, job.job_id)
        if await self.scheduler.store.record_of(sid) is None:
            try:
                name, questions = await asyncio.to_thread(self.questions, job)
            except DatasetError as exc:
                record = await self.scheduler.store.create_failed(job, str(exc))
                log.warning("exam job failed", extra={"job": sid, "error": str(exc)})
                await self.scheduler.publish(exam_result(record, [], final=True))
                return
            if await self.scheduler.store.create(job, name, questions):
                log.info("exam job started", extra={"job": sid, "questions": len(questions)})
        await self.scheduler.advance(sid)

    def questions(self, job: events.ExamJob) -> tuple[str, tuple[ExamQuestion, ...]]:
        task = TASKS[job.task]
        if task.needs_judge and self.judge is None:
            raise DatasetError(
                f"{job.task} jobs need a judge, and the grading service has none: {NO_JUDGE_FIX}"
            )
        path = dataset_path(self.scheduler.settings.data_root, job.tenant, job.dataset)
        try:
            return task.questions(path, job)
        except DatasetError:
            raise
        except Exception as exc:  # undecodable bytes, csv limits, I/O: the job fails
            raise DatasetError(f"{job.dataset}: cannot be read ({type(exc).__name__})") from exc
