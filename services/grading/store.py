"""Exam jobs in Redis: questions, the work queue, and graded answers counted exactly once.

Jobs are namespaced by tenant: a job's store id is ``{tenant}:{job_id}`` (``scoped_id``), so two
tenants choosing the same job id get two jobs, and a reply is looked up under the tenant it
carries. Per job (``{prefix}:exam:{{tenant}}:{job_id}:...``, ``job_keys.py``): ``meta`` (hash),
``questions`` (hash id -> JSON), ``todo`` (list of items not yet sent), ``pending`` (zset item
-> time sent), ``unsent`` (the pending items whose requests are not yet confirmed published),
``attempts`` (hash) and ``answers`` (hash item -> JSON). An item moves todo -> pending ->
answers; the moves are Lua scripts, so a crash between steps leaves every item in exactly one
place, and ``HSETNX`` on answers makes a redelivered reply change nothing; an answer is stored
only for an item that is pending (sent and not answered), and the first one wins. The tenant's
``jobs`` (zset by start time) and ``active`` (set of store ids) index the jobs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis

from services.grading.datasets import ExamQuestion
from services.grading.job_keys import JobKeys
from services.grading.records import (
    ExamAnswer,
    JobRecord,
    WorkItem,
    item_of,
    parse_item,
    scoped_id,
)
from shared.events import ExamJob, JobStatus
from shared.redis import as_text

_FILL = """
local room = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[2])
if room <= 0 then return {} end
local items = redis.call('LPOP', KEYS[1], room)
if not items then return {} end
for _, item in ipairs(items) do
  redis.call('ZADD', KEYS[2], ARGV[2], item)
  redis.call('ZADD', KEYS[4], ARGV[2], item)
  redis.call('HINCRBY', KEYS[3], item, 1)
end
return items
"""

_RECORD = """
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
return 0
"""

_RETRY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
local attempts = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if attempts >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
"""


_END_JOB = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'finished_at', ARGV[4])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


class ExamStore:
    def __init__(self, redis: aioredis.Redis, key_prefix: str) -> None:
        self.redis = redis
        self.keys = JobKeys(key_prefix, "exam")
        self._fill = redis.register_script(_FILL)
        self._record = redis.register_script(_RECORD)
        self._retry = redis.register_script(_RETRY)

    def _key(self, sid: str, part: str) -> str:
        return self.keys.part(sid, part)

    # Jobs -------------------------------------------------------------------------------

    async def create(
        self, job: ExamJob, dataset_name: str, questions: Sequence[ExamQuestion]
    ) -> bool:
        """Store a new job and queue its items; False when the job already exists (a
        redelivered job message: it resumes instead)."""
        sid = scoped_id(job.tenant, job.job_id)
        if await self.redis.exists(self._key(sid, "meta")):
            return False
        now = datetime.now(UTC)
        # Question-major order: a question's strategies are asked close together.
        items = [str(item_of(s, q.question_id)) for q in questions for s in job.strategies]
        await self.keys.note_tenant(self.redis, sid)
        async with self.redis.pipeline(transaction=True) as pipe:  # pragma: no mutate (atomic)
            pipe.hset(self._key(sid, "questions"),
                      mapping={q.question_id: q.model_dump_json() for q in questions})  # fmt: skip
            pipe.rpush(self._key(sid, "todo"), *items)
            pipe.hset(
                self._key(sid, "meta"),
                mapping={
                    "job": job.model_dump_json(),
                    "dataset": dataset_name,
                    "status": JobStatus.RUNNING.value,
                    "total_questions": len(questions),
                    "started_at": now.isoformat(),
                    "nonce": secrets.token_hex(16),
                },
            )
            pipe.zadd(self._jobs_key(job.tenant), {job.job_id: now.timestamp()})
            pipe.sadd(self.keys.active(sid), sid)
            await pipe.execute()
        return True

    async def create_failed(self, job: ExamJob, error: str) -> JobRecord:
        """Record a job that could not start (e.g. its dataset is unreadable)."""
        now = datetime.now(UTC)
        sid = scoped_id(job.tenant, job.job_id)
        async with self.redis.pipeline(transaction=True) as pipe:  # pragma: no mutate (atomic)
            pipe.hset(
                self._key(sid, "meta"),
                mapping={"job": job.model_dump_json(), "dataset": job.dataset,
                         "status": JobStatus.FAILED.value, "total_questions": 0,
                         "started_at": now.isoformat(), "finished_at": now.isoformat(),
                         "error": error},
            )  # fmt: skip
            pipe.zadd(self._jobs_key(job.tenant), {job.job_id: now.timestamp()})
            await pipe.execute()
        record = await self.record_of(sid)
        assert record is not None
        return record

    async def record_of(self, sid: str) -> JobRecord | None:
        """The job stored under ``sid`` (``scoped_id(tenant, job_id)``); None: no such job."""
        raw = await self.redis.hgetall(self._key(sid, "meta"))
        meta = {as_text(k): as_text(v) for k, v in raw.items()}
        if not meta:
            return None
        return JobRecord(
            job=ExamJob.model_validate_json(meta["job"]),
            dataset_name=meta["dataset"],
            status=JobStatus(meta["status"]),
            total_questions=int(meta["total_questions"]),
            started_at=datetime.fromisoformat(meta["started_at"]),
            finished_at=datetime.fromisoformat(meta["finished_at"])
            if meta.get("finished_at")
            else None,
            error=meta.get("error"),
            nonce=meta.get("nonce", ""),
        )

    async def finish(self, sid: str) -> None:
        await self._end(sid, JobStatus.DONE)

    async def cancel(self, sid: str) -> bool:
        """Stop a running job (False: it had ended already, or does not exist)."""
        return await self._end(sid, JobStatus.CANCELLED)

    async def _end(self, sid: str, status: JobStatus) -> bool:
        """Running -> ``status``, atomically: a job cancelled while it finishes ends once."""
        ended = await self.redis.eval(
            _END_JOB, 2, self._key(sid, "meta"), self.keys.active(sid), sid,
            JobStatus.RUNNING.value, status.value, datetime.now(UTC).isoformat(),
        )  # fmt: skip
        return bool(ended)

    async def active(self) -> list[str]:
        return await self.keys.active_ids(self.redis)

    def _jobs_key(self, tenant: str) -> str:
        return self.keys.jobs(tenant)

    async def recent(self, tenant: str, limit: int = 50) -> list[JobRecord]:
        """The tenant's newest jobs first."""
        ids = await self.keys.newest(self.redis, tenant, limit)
        records = [await self.record_of(scoped_id(tenant, i)) for i in ids]
        return [r for r in records if r is not None]

    async def find(self, tenant: str, prefix: str) -> list[str]:
        """Ids of the tenant's jobs that start with ``prefix`` (for ``exam show`` with a
        shortened id), at most 10."""
        return await self.keys.find(self.redis, tenant, prefix)

    # Work items -------------------------------------------------------------------------

    async def fill(self, sid: str, window: int, now: float) -> list[WorkItem]:
        """Move items from todo to pending (sent at ``now``) until ``window`` are pending;
        atomic, so replicas refilling at once never exceed the window."""
        keys = [self._key(sid, p) for p in ("todo", "pending", "attempts", "unsent")]
        items = await self._fill(keys=keys, args=[window, now])
        return [parse_item(i) for i in items]

    async def questions(self, sid: str, question_ids: Iterable[str]) -> list[ExamQuestion]:
        ids = list(question_ids)
        if not ids:
            return []
        values = await self.redis.hmget(self._key(sid, "questions"), ids)
        return [ExamQuestion.model_validate_json(v) for v in values if v is not None]

    async def record(self, sid: str, item: WorkItem, answer: ExamAnswer) -> bool:
        """Store a graded answer; False when the item is not pending (answered already: a
        duplicate; or never sent)."""
        keys = [self._key(sid, p) for p in ("answers", "pending", "unsent")]
        return bool(await self._record(keys=keys, args=[str(item), answer.model_dump_json()]))

    async def retry(self, sid: str, item: WorkItem, now: float, max_attempts: int) -> int:
        """Mark an unanswered item as sent again: the attempt number, 0 when it has used all
        its attempts, -1 when it is answered already."""
        keys = [self._key(sid, p) for p in ("answers", "pending", "attempts", "unsent")]
        return int(await self._retry(keys=keys, args=[str(item), now, max_attempts]))

    async def attempts(self, sid: str, item: WorkItem) -> int:
        return int(await self.redis.hget(self._key(sid, "attempts"), str(item)) or 0)

    async def sent(self, sid: str, items: Sequence[WorkItem]) -> None:
        """The requests of these items are published (acknowledged by the broker)."""
        if items:
            await self.redis.zrem(self._key(sid, "unsent"), *map(str, items))

    async def overdue(self, sid: str, sent_before: float, claimed_before: float) -> list[WorkItem]:
        """Pending items sent before ``sent_before`` (their reply may be lost), and items
        claimed before ``claimed_before`` but never published (the sender crashed)."""
        async with self.redis.pipeline(transaction=False) as pipe:  # pragma: no mutate (reads only)
            pipe.zrangebyscore(self._key(sid, "pending"), "-inf", sent_before)
            pipe.zrangebyscore(self._key(sid, "unsent"), "-inf", claimed_before)
            lost, unsent = await pipe.execute()
        return [parse_item(i) for i in dict.fromkeys(as_text(i) for i in (*unsent, *lost))]

    async def counts(self, sid: str) -> tuple[int, int, int]:
        """(todo, pending, answered)."""
        async with self.redis.pipeline(transaction=False) as pipe:  # pragma: no mutate (reads only)
            pipe.llen(self._key(sid, "todo"))
            pipe.zcard(self._key(sid, "pending"))
            pipe.hlen(self._key(sid, "answers"))
            todo, pending, answered = await pipe.execute()
        return int(todo), int(pending), int(answered)

    async def answers(self, sid: str) -> list[ExamAnswer]:
        values = await self.redis.hvals(self._key(sid, "answers"))
        return [ExamAnswer.model_validate_json(v) for v in values]
