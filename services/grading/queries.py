"""Reading and ending exam jobs from outside the service (the CLI's ``exam show|cancel|list``):
the same store the service writes, looked up by a job's id or the start of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from services.grading.records import JobRecord, scoped_id
from services.grading.results import exam_result
from services.grading.store import ExamStore
from shared import events
from shared.errors import Hinted
from shared.redis import make_redis
from shared.settings import RedisSettings


class ExamJobs:
    """A tenant's exam jobs in the store."""

    def __init__(self, store: ExamStore) -> None:
        self.store = store

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: RedisSettings) -> AsyncIterator[ExamJobs]:
        store = ExamStore(make_redis(settings), settings.key_prefix)
        try:
            yield cls(store)
        finally:
            await store.redis.aclose()

    async def find(self, tenant: str, job_id: str) -> JobRecord:
        """The tenant's job whose id is, or is the only one to start with, ``job_id``;
        ``Hinted`` when none or several are."""
        record = await self.store.record_of(scoped_id(tenant, job_id))
        if record is not None:
            return record
        matches = await self.store.find(tenant, job_id)
        if len(matches) == 1:
            record = await self.store.record_of(scoped_id(tenant, matches[0]))
            if record is not None:
                return record
        if len(matches) > 1:
            raise Hinted(f"{job_id} matches several jobs of {tenant}: {', '.join(matches)}",
                         "give more of the id")  # fmt: skip
        raise Hinted(f"tenant {tenant} has no exam job {job_id}",
                     f"alignstream exam list --tenant {tenant}")  # fmt: skip

    async def result(self, tenant: str, job_id: str) -> events.ExamResult:
        """The job's results so far (final once it is no longer running)."""
        record = await self.find(tenant, job_id)
        answers = await self.store.answers(record.sid)
        return exam_result(record, answers, final=record.status is not events.JobStatus.RUNNING)

    async def cancel(self, tenant: str, job_id: str) -> tuple[JobRecord, events.ExamResult | None]:
        """Cancel the job: its record, and its final result (None when it was not running)."""
        record = await self.find(tenant, job_id)
        if not await self.store.cancel(record.sid):
            return record, None
        cancelled = await self.store.record_of(record.sid)
        assert cancelled is not None, "a cancelled job keeps its record"
        answers = await self.store.answers(record.sid)
        return cancelled, exam_result(cancelled, answers, final=True)

    async def recent(self, tenant: str, limit: int) -> list[JobRecord]:
        return await self.store.recent(tenant, limit)
