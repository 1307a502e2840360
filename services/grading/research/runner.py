"""Runs research jobs: one task per job, on the one replica that holds its lease; progress and
the final result published to ``research.progress`` and kept in the job's record.

A job seen before (redelivered, resubmitted, or found active after a restart) resumes from its
checkpoints; a finished one only has its final event published again. The lease expires when
its replica dies, so another replica's sweep takes the job over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import JsonValue

from services.grading.judge.client import JudgeError
from services.grading.research.c2syn.job import synthesize
from services.grading.research.context import JobContext, ResearchError
from services.grading.research.drpo.job import optimize_prompts
from services.grading.research.iteralign import discover_rounds
from services.grading.research.questions import generate_exam
from services.grading.research.store import ResearchRecord, ResearchStore
from shared import events
from shared.kafka import OversizedMessage
from shared.service import Publisher
from shared.topics import RESEARCH_PROGRESS

log = logging.getLogger(__name__)

Method = Callable[[JobContext, Any], Awaitable[dict[str, JsonValue]]]
METHODS: dict[str, Method] = {
    "prompts-optimize": optimize_prompts,
    "course-correction-synth": synthesize,
    "constitution-discover": discover_rounds,
    "questions-generate": generate_exam,
}
"""Each spec's ``method`` -> the coroutine that runs it (a new method is a line here)."""

ContextFactory = Callable[
    [events.ResearchJob, Callable[[str, int, int], Awaitable[None]]], JobContext
]


def progress_event(record: ResearchRecord, elapsed_s: float) -> events.ResearchProgress:
    return events.ResearchProgress(
        job_id=record.job.job_id,
        tenant=record.job.tenant,
        method=record.job.spec.method,
        status=record.status,
        stage=record.stage,
        done=record.done,
        total=record.total,
        final=record.final,
        error=record.error,
        result=record.result if record.final else {},
        elapsed_s=round(elapsed_s, 3),
    )


class ResearchRunner:
    def __init__(
        self,
        store: ResearchStore,
        out: Publisher,
        make_context: ContextFactory,
        *,
        lease_ms: int = 30_000,
        progress_interval_s: float = 1.0,
        methods: dict[str, Method] | None = None,
    ) -> None:
        self.store = store
        self.methods = METHODS if methods is None else methods
        self.out = out
        self.make_context = make_context
        self.lease_ms = lease_ms
        self.progress_interval_s = progress_interval_s
        self.owner = uuid.uuid4().hex
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        """Jobs whose task this runner cancelled because ``research cancel`` asked."""

    async def submit(self, job: events.ResearchJob) -> None:
        record = await self.store.create(job)
        if record.status is events.JobStatus.FAILED:
            # Submitted again after failing (the judge was down, a file was missing): retry it
            # from its checkpoints.
            record = record.model_copy(
                update={"status": events.JobStatus.RUNNING, "error": None, "finished_at": None}
            )
            await self.store.save(record)
            await self.store.reactivate(record.sid)
        elif record.final:  # seen before and finished: say so again, run nothing
            await self._publish(record)
            return
        await self.ensure_running(record.sid)

    async def resume_all(self) -> None:
        for sid in await self.store.active():
            await self.ensure_running(sid)

    async def sweep_forever(self, interval_s: float) -> None:
        """Resume active jobs no replica runs (after a restart, or a lapsed lease)."""
        while True:
            try:
                await self.resume_all()
            except Exception:  # Redis away: try again next round
                log.exception("research sweep failed")
            await asyncio.sleep(interval_s)

    async def ensure_running(self, sid: str) -> None:
        task = self.tasks.get(sid)
        if task is not None and not task.done():
            return
        if not await self.store.take_lease(sid, self.owner, self.lease_ms):
            return  # another replica runs it
        self.tasks[sid] = asyncio.create_task(self._run(sid), name=f"research-{sid}")

    async def stop(self) -> None:
        """Cancel the running jobs (they stay active in Redis: the next start resumes them)."""
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()

    async def _run(self, sid: str) -> None:
        record = await self.store.get(sid)
        if record is None or record.final:
            await self.store.release_lease(sid, self.owner)
            return
        started = time.monotonic()
        last = 0.0

        async def report(stage: str, done: int, total: int) -> None:
            nonlocal record, last
            assert record is not None
            record = record.model_copy(update={"stage": stage, "done": done, "total": total})
            now = time.monotonic()
            if now - last >= self.progress_interval_s:
                last = now
                await self.store.save(record)
                await self._publish(record, now - started)

        this = asyncio.current_task()
        heartbeat = asyncio.create_task(self._keep_lease(sid, this))
        try:
            ctx = self.make_context(record.job, report)
            result = await self.methods[record.job.spec.method](ctx, record.job.spec)
            record = record.model_copy(
                update={
                    "status": events.JobStatus.DONE,
                    "result": result,
                    "stage": "done",
                    "done": record.total,
                    "finished_at": datetime.now(UTC),
                }
            )
            log.info("research job done", extra={"job": sid})
        except asyncio.CancelledError:
            if sid not in self._cancelled:
                # Stopped (shutdown): the job stays active; another replica, or this one after
                # a restart, resumes it from its checkpoints.
                await self.store.release_lease(sid, self.owner)
                raise
            # ``research cancel``: the job ends here, its checkpoints kept.
            self._cancelled.discard(sid)
            if this is not None:
                this.uncancel()
            record = record.model_copy(update={"status": events.JobStatus.CANCELLED,
                                               "finished_at": datetime.now(UTC)})  # fmt: skip
            log.info("research job cancelled", extra={"job": sid})
        except (ResearchError, JudgeError) as exc:
            record = self._failed(record, str(exc))
        except Exception as exc:  # a bug or an outage: the job fails with the reason, once
            log.exception("research job failed", extra={"job": sid})
            record = self._failed(record, f"{type(exc).__name__}: {exc}"[:2000])
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self.store.save(record)
        await self._publish(record, time.monotonic() - started)
        await self.store.release_lease(sid, self.owner)

    @staticmethod
    def _failed(record: ResearchRecord, error: str) -> ResearchRecord:
        log.warning("research job failed", extra={"job": record.sid, "error": error})
        return record.model_copy(
            update={
                "status": events.JobStatus.FAILED,
                "error": error,
                "finished_at": datetime.now(UTC),
            }
        )

    async def _keep_lease(self, sid: str, job: asyncio.Task[Any] | None) -> None:
        """Renews the lease, and stops the job when ``research cancel`` asked (checked as
        often: within a third of the lease)."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            with contextlib.suppress(Exception):  # Redis away: try again; the lease may lapse
                await self.store.renew_lease(sid, self.owner, self.lease_ms)
                if job is not None and await self.store.cancel_requested(sid):
                    self._cancelled.add(sid)
                    job.cancel()
                    return

    async def _publish(self, record: ResearchRecord, elapsed_s: float = 0.0) -> None:
        event = progress_event(record, elapsed_s)
        try:
            self.out.encode_bounded(event)
        except OversizedMessage:  # the full result stays in the record and the output folder
            small = {k: v for k, v in event.result.items() if not isinstance(v, dict | list)}
            event = event.model_copy(update={"result": {**small, "result_truncated": True}})
        await self.out.publish_all(self.out.topics(RESEARCH_PROGRESS), [event])
