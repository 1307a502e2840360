"""Research jobs in Redis: the record, the lease that makes one replica run a job, and the
checkpoints a method resumes from.

Per job (``{prefix}:research:{{tenant}}:{job_id}:...``, ``job_keys.py``): ``record`` (JSON),
``lease`` (the id of the replica running it, expiring unless renewed), ``state`` (hash: the
method's checkpoints, JSON per field) and ``seen`` (set: hashes of what was already written,
e.g. preference pairs), and ``cancel`` once ``research cancel`` asked it to stop. The tenant's
``active`` set lists the store ids of its running jobs (a replica that starts resumes them);
its ``jobs`` list (by start time) lets a shortened id name a job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, JsonValue

from services.grading.job_keys import JobKeys
from services.grading.records import scoped_id
from shared.events import JobStatus, ResearchJob

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ResearchRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    job: ResearchJob
    status: JobStatus = JobStatus.RUNNING
    started_at: datetime
    finished_at: datetime | None = None
    stage: str = ""
    done: int = 0
    total: int = 0
    error: str | None = None
    result: dict[str, JsonValue] = {}

    @property
    def sid(self) -> str:
        return scoped_id(self.job.tenant, self.job.job_id)

    @property
    def final(self) -> bool:
        return self.status is not JobStatus.RUNNING


class ResearchStore:
    def __init__(self, redis: aioredis.Redis, key_prefix: str) -> None:
        self.redis = redis
        self.keys = JobKeys(key_prefix, "research")
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _key(self, sid: str, part: str) -> str:
        return self.keys.part(sid, part)

    async def create(self, job: ResearchJob) -> ResearchRecord:
        """The job's record: created RUNNING if new, else the one stored (a redelivered or
        resubmitted job resumes, it does not restart)."""
        record = ResearchRecord(job=job, started_at=datetime.now(UTC))
        await self.keys.note_tenant(self.redis, record.sid)
        created = await self.redis.set(
            self._key(record.sid, "record"), record.model_dump_json(), nx=True
        )
        if created:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self.keys.active(record.sid), record.sid)
                pipe.zadd(self.keys.jobs(job.tenant), {job.job_id: record.started_at.timestamp()})
                await pipe.execute()
            return record
        stored = await self.get(record.sid)
        assert stored is not None
        return stored

    async def get(self, sid: str) -> ResearchRecord | None:
        """The job's record; a running job asked to stop reads as cancelled at once (its
        runner writes the final record when it notices)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key(sid, "record"))
            pipe.exists(self._key(sid, "cancel"))
            raw, cancelled = await pipe.execute()
        if raw is None:
            return None
        record = ResearchRecord.model_validate_json(raw)
        if cancelled and record.status is JobStatus.RUNNING:
            return record.model_copy(update={"status": JobStatus.CANCELLED})
        return record

    async def recent(self, tenant: str, limit: int) -> list[ResearchRecord]:
        """The tenant's newest jobs first."""
        ids = await self.keys.newest(self.redis, tenant, limit)
        records = [await self.get(scoped_id(tenant, i)) for i in ids]
        return [r for r in records if r is not None]

    async def find(self, tenant: str, prefix: str) -> list[str]:
        return await self.keys.find(self.redis, tenant, prefix)

    async def cancel(self, sid: str) -> ResearchRecord | None:
        """Ask a running job to stop (no longer active: no replica resumes it); its record,
        or None when it was not running."""
        record = await self.get(sid)
        if record is None or record.final:
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(sid, "cancel"), 1)
            pipe.srem(self.keys.active(sid), sid)
            await pipe.execute()
        return record.model_copy(update={"status": JobStatus.CANCELLED})

    async def cancel_requested(self, sid: str) -> bool:
        return bool(await self.redis.exists(self._key(sid, "cancel")))

    async def save(self, record: ResearchRecord) -> None:
        await self.redis.set(self._key(record.sid, "record"), record.model_dump_json())
        if record.final:
            await self.redis.srem(self.keys.active(record.sid), record.sid)

    async def reactivate(self, sid: str) -> None:
        await self.keys.note_tenant(self.redis, sid)
        await self.redis.sadd(self.keys.active(sid), sid)

    async def active(self) -> list[str]:
        return await self.keys.active_ids(self.redis)

    # -- the lease: one replica runs a job at a time ------------------------------------------

    async def take_lease(self, sid: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self.redis.set(self._key(sid, "lease"), owner, nx=True, px=ttl_ms))

    async def renew_lease(self, sid: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self._renew(keys=[self._key(sid, "lease")], args=[owner, ttl_ms]))

    async def release_lease(self, sid: str, owner: str) -> None:
        await self._release(keys=[self._key(sid, "lease")], args=[owner])

    # -- checkpoints ---------------------------------------------------------------------------

    async def checkpoint(self, sid: str, field: str) -> JsonValue | None:
        raw = await self.redis.hget(self._key(sid, "state"), field)
        return None if raw is None else json.loads(raw)

    async def checkpoints(self, sid: str, fields: Iterable[str]) -> list[JsonValue | None]:
        names = list(fields)
        if not names:
            return []
        raws = await self.redis.hmget(self._key(sid, "state"), names)
        return [None if raw is None else json.loads(raw) for raw in raws]

    async def set_checkpoint(self, sid: str, field: str, value: JsonValue) -> None:
        await self.redis.hset(self._key(sid, "state"), field, json.dumps(value))

    async def unseen(self, sid: str, digests: list[str]) -> list[bool]:
        """For each digest, whether it was not marked seen yet."""
        if not digests:
            return []
        flags = await self.redis.smismember(self._key(sid, "seen"), digests)
        return [not flag for flag in flags]

    async def commit(
        self, sid: str, seen: Iterable[str], checkpoints: dict[str, JsonValue]
    ) -> None:
        """Mark ``seen`` and write ``checkpoints`` at once (a crash keeps both or neither)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            marked = list(seen)
            if marked:
                pipe.sadd(self._key(sid, "seen"), *marked)
            if checkpoints:
                pipe.hset(
                    self._key(sid, "state"),
                    mapping={k: json.dumps(v) for k, v in checkpoints.items()},
                )
            await pipe.execute()
