"""Reading and ending jobs from outside the service (the CLI's ``exam show|cancel|list`` and
``research show|cancel|list``): the same stores the service writes, a job looked up by its id or
the start of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from services.grading.records import JobRecord, scoped_id
from services.grading.research.store import ResearchRecord, ResearchStore
from services.grading.results import exam_result
from services.grading.store import ExamStore
from shared import events
from shared.errors import Hinted
from shared.redis import make_redis
from shared.settings import RedisSettings


def _no_job(kind: str, tenant: str, job_id: str) -> Hinted:
    return Hinted(f"tenant {tenant} has no {kind} job {job_id}",
                  f"alignstream {kind} list --tenant {tenant}")  # fmt: skip


async def resolve_id(
    kind: str, tenant: str, job_id: str, find: Callable[[str, str], Awaitable[list[str]]]
) -> str:
    """The id of the tenant's job that ``job_id`` is, or is the only one to start with."""
    matches = await find(tenant, job_id)
    if job_id in matches or len(matches) == 1:
        return job_id if job_id in matches else matches[0]
    if matches:
        raise Hinted(f"{job_id} matches several {kind} jobs of {tenant}: {', '.join(matches)}",
                     "give more of the id")  # fmt: skip
    raise _no_job(kind, tenant, job_id)


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
        if record is None:
            full = await resolve_id("exam", tenant, job_id, self.store.find)
            record = await self.store.record_of(scoped_id(tenant, full))
        if record is None:
            raise _no_job("exam", tenant, job_id)
        return record

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


class ResearchJobs:
    """A tenant's research jobs in the store."""

    def __init__(self, store: ResearchStore) -> None:
        self.store = store

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: RedisSettings) -> AsyncIterator[ResearchJobs]:
        store = ResearchStore(make_redis(settings), settings.key_prefix)
        try:
            yield cls(store)
        finally:
            await store.redis.aclose()

    async def find(self, tenant: str, job_id: str) -> ResearchRecord:
        record = await self.store.get(scoped_id(tenant, job_id))
        if record is None:
            full = await resolve_id("research", tenant, job_id, self.store.find)
            record = await self.store.get(scoped_id(tenant, full))
        if record is None:
            raise _no_job("research", tenant, job_id)
        return record

    async def cancel(self, tenant: str, job_id: str) -> tuple[ResearchRecord, bool]:
        """Ask the job to stop: its record, and whether it was running."""
        record = await self.find(tenant, job_id)
        cancelled = await self.store.cancel(record.sid)
        return (record, False) if cancelled is None else (cancelled, True)

    async def recent(self, tenant: str, limit: int) -> list[ResearchRecord]:
        ids = await self.store.find(tenant, "", limit=limit)
        records = [await self.store.get(scoped_id(tenant, i)) for i in ids]
        return [r for r in records if r is not None]
