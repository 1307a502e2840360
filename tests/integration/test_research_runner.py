"""The research runner on a real Redis: one replica runs a job (the lease), a stopped replica's
job is taken over by another and resumed from its checkpoints, a failed job submitted again is
retried, a finished one only has its end published again, a cancelled one stops for good."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import JsonValue

from services.grading.research.context import Checkpoints, JobContext, ResearchError
from services.grading.research.runner import ResearchRunner
from services.grading.research.store import ResearchStore
from shared import events
from shared.settings import RedisSettings
from shared.testing.publishers import RecordingPublisher
from shared.topics import RESEARCH_PROGRESS

SPEC = events.ConstitutionDiscoverSpec(prompts="p.txt")


class Steps:
    """A method of three steps, each checkpointed; it waits at a gate before step 2."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.ran: list[int] = []
        self.fail = False

    async def __call__(self, ctx: JobContext, spec: Any) -> dict[str, JsonValue]:
        done = await ctx.checkpoints.get("done")
        for step in range(int(str(done or 0)) + 1, 4):
            if step == 2:
                await self.gate.wait()
            if self.fail:
                raise ResearchError("judge down")
            self.ran.append(step)
            await ctx.checkpoints.put("done", step)
            await ctx.report(f"step {step}", step, 3)
        return {"steps": 3}


def runner(
    store: ResearchStore, out: RecordingPublisher, steps: Steps, lease_ms: int = 60_000
) -> ResearchRunner:
    def context(
        job: events.ResearchJob, report: Callable[[str, int, int], Awaitable[None]]
    ) -> JobContext:
        unused: Any = None  # the method uses only its checkpoints and the reporter
        return JobContext(
            job=job,
            pipeline=unused,
            judge=None,
            optimizer=None,
            checkpoints=Checkpoints(store, f"{job.tenant}:{job.job_id}"),
            prompt_sets=unused,
            data_root=Path("."),
            output_root=Path("."),
            report=report,
            embedder=unused,
            searcher=unused,
            redis=store.redis,
            key_prefix="",
        )

    return ResearchRunner(
        store,
        out,
        context,
        lease_ms=lease_ms,
        progress_interval_s=0.0,
        methods={SPEC.method: steps},
    )


async def finished(out: RecordingPublisher, job: events.ResearchJob) -> events.ResearchProgress:
    for _ in range(200):
        ends = [
            e
            for e in out.published[RESEARCH_PROGRESS.name]
            if isinstance(e, events.ResearchProgress) and e.final and e.job_id == job.job_id
        ]
        if ends:
            return ends[-1]
        await asyncio.sleep(0.02)
    raise AssertionError("no final progress event")


async def test_a_stopped_replicas_job_is_resumed_by_another_from_its_checkpoints(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store = ResearchStore(redis_client, redis_settings.key_prefix)
    first_steps, second_steps = Steps(), Steps()
    first_out, second_out = RecordingPublisher(), RecordingPublisher()
    first, second = runner(store, first_out, first_steps), runner(store, second_out, second_steps)
    job = events.ResearchJob(tenant="acme", spec=SPEC)
    await first.submit(job)
    await asyncio.sleep(0.2)
    assert first_steps.ran == [1]
    await second.submit(job)  # redelivered to the other replica: the first holds the lease
    await second.resume_all()
    assert not second.tasks
    await first.stop()  # shutdown: the job stays active, the lease is released
    second_steps.gate.set()
    await second.resume_all()
    end = await finished(second_out, job)
    assert end.status is events.JobStatus.DONE
    assert second_steps.ran == [2, 3]  # step 1 was not run again
    assert end.result == {"steps": 3}
    await second.submit(job)  # finished: its end is published again, nothing runs
    assert second_steps.ran == [2, 3]
    assert await store.active() == []


async def test_a_failed_job_submitted_again_is_retried_from_its_checkpoints(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store = ResearchStore(redis_client, redis_settings.key_prefix)
    steps, out = Steps(), RecordingPublisher()
    one = runner(store, out, steps)
    job = events.ResearchJob(tenant="acme", spec=SPEC)
    steps.gate.set()
    steps.fail = True
    await one.submit(job)
    failed = await finished(out, job)
    assert (failed.status, failed.error) == (events.JobStatus.FAILED, "judge down")
    steps.fail = False
    out.published.clear()
    await one.submit(job)
    end = await finished(out, job)
    assert end.status is events.JobStatus.DONE
    assert steps.ran == [1, 2, 3]
    await one.stop()


async def test_a_cancelled_job_stops_ends_cancelled_and_is_never_resumed(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store = ResearchStore(redis_client, redis_settings.key_prefix)
    steps, out = Steps(), RecordingPublisher()
    one = runner(store, out, steps, lease_ms=300)  # checks for a cancel every 0.1 s
    job = events.ResearchJob(tenant="acme", spec=SPEC)
    await one.submit(job)
    await asyncio.sleep(0.2)
    assert steps.ran == [1]  # waiting at the gate before step 2
    assert await store.find("acme", job.job_id[:6]) == [job.job_id]
    assert await store.find("globex", job.job_id[:6]) == []
    cancelled = await store.cancel(f"acme:{job.job_id}")
    assert cancelled is not None
    assert cancelled.status is events.JobStatus.CANCELLED
    end = await finished(out, job)
    assert end.status is events.JobStatus.CANCELLED
    steps.gate.set()
    await asyncio.sleep(0.1)
    assert steps.ran == [1]  # step 2 never ran
    assert await store.active() == []
    record = await store.get(f"acme:{job.job_id}")
    assert record is not None
    assert (record.status, record.done) == (events.JobStatus.CANCELLED, 1)
    assert await store.cancel(f"acme:{job.job_id}") is None  # ended: nothing to cancel
    other = runner(store, RecordingPublisher(), Steps())
    await other.submit(job)  # submitted again: its end is said again, nothing runs
    await other.resume_all()
    assert not other.tasks
