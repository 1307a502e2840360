"""Reading and ending jobs from outside the service (the CLI's ``exam show|cancel|list`` and
``research show|cancel|list``): the same stores the service writes, a job looked up by its id or
the start of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from services.grading.records import JobRecord, scoped_id
from services.grading.research.store import ResearchRecord, ResearchStore
from services.grading.results import exam_result
from services.grading.store import ExamStore
from shared import events
from shared.errors import Hinted
from shared.redis import make_redis
from shared.settings import RedisSettings

R = TypeVar("R")


async def find_job(
    kind: str,
    tenant: str,
    job_id: str,
    get: Callable[[str], Awaitable[R | None]],
    find: Callable[[str, str], Awaitable[list[str]]],
) -> R:
    """The record of the tenant's job whose id is ``job_id``, or the only one to start with it;
    ``Hinted`` when none or several are."""
    record = await get(scoped_id(tenant, job_id))
    if record is not None:
        return record
    matches = await find(tenant, job_id)
    if len(matches) > 1:
        raise Hinted(f"{job_id} matches several {kind} jobs of {tenant}: {', '.join(matches)}",
                     "give more of the id")  # fmt: skip
    record = await get(scoped_id(tenant, matches[0])) if matches else None
    if record is None:
        raise Hinted(f"tenant {tenant} has no {kind} job {job_id}",
                     f"alignstream {kind} list --tenant {tenant}")  # fmt: skip
    return record


@contextlib.asynccontextmanager
async def _client(settings: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    client = make_redis(settings)
    try:
        yield client
    finally:
        await client.aclose()


class ExamJobs:
    """A tenant's exam jobs in the store."""

    def __init__(self, store: ExamStore) -> None:
        self.store = store

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: RedisSettings) -> AsyncIterator[ExamJobs]:
        async with _client(settings) as client:
            yield cls(ExamStore(client, settings.key_prefix))

    async def find(self, tenant: str, job_id: str) -> JobRecord:
        """The tenant's job whose id is, or is the only one to start with, ``job_id``;
        ``Hinted`` when none or several are."""
        return await find_job("exam", tenant, job_id, self.store.record_of, self.store.find)

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
        async with _client(settings) as client:
            yield cls(ResearchStore(client, settings.key_prefix))

    async def find(self, tenant: str, job_id: str) -> ResearchRecord:
        return await find_job("research", tenant, job_id, self.store.get, self.store.find)

    async def cancel(self, tenant: str, job_id: str) -> tuple[ResearchRecord, bool]:
        """Ask the job to stop: its record, and whether it was running."""
        record = await self.find(tenant, job_id)
        cancelled = await self.store.cancel(record.sid)
        return (record, False) if cancelled is None else (cancelled, True)

    async def recent(self, tenant: str, limit: int) -> list[ResearchRecord]:
        return await self.store.recent(tenant, limit)
