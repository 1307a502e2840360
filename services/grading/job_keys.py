"""The Redis keys of one kind of job (exams, research jobs), each with its tenant's hash tag
(``shared/memory/keys.py``): a job's parts, its tenant's job list and active set share one slot,
so the store's transactions and scripts stay on one shard of a cluster.

Which jobs are active is kept per tenant (moved in the same transaction as the job); a set of no
tenant lists the tenants that ever had a job of the kind, so that a restarted replica finds
every active job without scanning the key space. That set is only added to (before a job is
created), never in a transaction with a tenant's keys.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.memory.keys import RuleKeys
from shared.redis import as_text


def split_sid(sid: str) -> tuple[str, str]:
    """A store id (``scoped_id``: ``tenant:job_id``) as its tenant and job id."""
    tenant, _, job_id = sid.partition(":")
    return tenant, job_id


class JobKeys:
    def __init__(self, key_prefix: str, kind: str) -> None:
        self.keys = RuleKeys(key_prefix)
        self.kind = kind

    def part(self, sid: str, part: str) -> str:
        return self.keys.job_key(self.kind, *split_sid(sid), part)

    def active(self, sid: str) -> str:
        """The active set of the job's tenant."""
        return self.keys.active_jobs_key(self.kind, split_sid(sid)[0])

    def jobs(self, tenant: str) -> str:
        return self.keys.jobs_key(self.kind, tenant)

    async def note_tenant(self, redis: aioredis.Redis, sid: str) -> None:
        """Before a job of the tenant becomes active: where ``active_ids`` will look."""
        await redis.sadd(self.keys.job_tenants_key(self.kind), split_sid(sid)[0])

    async def active_ids(self, redis: aioredis.Redis) -> list[str]:
        """The store ids of every tenant's active jobs."""
        tenants = await redis.smembers(self.keys.job_tenants_key(self.kind))
        found: list[str] = []
        for tenant in sorted(as_text(t) for t in tenants):
            found += (as_text(m) for m in await redis.smembers(
                self.keys.active_jobs_key(self.kind, tenant)))  # fmt: skip
        return sorted(found)

    async def newest(self, redis: aioredis.Redis, tenant: str, limit: int) -> list[str]:
        """Ids of the tenant's newest ``limit`` jobs, newest first."""
        return [as_text(i) for i in await redis.zrevrange(self.jobs(tenant), 0, limit - 1)]

    async def find(self, redis: aioredis.Redis, tenant: str, prefix: str) -> list[str]:
        """Ids of the tenant's jobs that start with ``prefix`` (a shortened id), newest first,
        at most 10."""
        ids = [as_text(i) for i in await redis.zrevrange(self.jobs(tenant), 0, -1)]
        return [i for i in ids if i.startswith(prefix)][:10]
