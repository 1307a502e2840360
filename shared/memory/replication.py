"""Acknowledge a write only once replicas hold it (``ALIGNSTREAM_REDIS_WAIT_REPLICAS``): after a
batch of writes, each shard that took some reports its replication offset, and the writer waits
until enough of that shard's replicas have reached it. A primary killed after the
acknowledgement then loses none of it: the replica promoted in its place has it.

Not ``WAIT``: it counts only the writes of the connection it is sent on, and a cluster pipeline
spreads a batch over pooled connections; the offset read after the writes covers all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from shared.memory.keys import hash_tag


class ReplicationLag(RuntimeError):
    """The replicas did not confirm in time: the writes are done but not acknowledged (the
    event is redelivered and rewritten, which changes nothing)."""


def _replica_offsets(info: dict[str, Any]) -> list[int]:
    return [
        int(v["offset"])
        for k, v in info.items()
        if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
    ]


async def _info(client: aioredis.Redis, tenant: str) -> dict[str, Any]:
    if isinstance(client, aioredis.RedisCluster):
        node = client.get_node_from_key(hash_tag(tenant))
        return dict(await client.info("replication", target_nodes=node))
    return dict(await client.info("replication"))


async def replicated(
    client: aioredis.Redis, tenants: Iterable[str], *, replicas: int, timeout_s: float
) -> None:
    """Return once ``replicas`` replicas of every shard holding one of ``tenants`` have every
    write made so far; ``ReplicationLag`` after ``timeout_s``."""
    if replicas <= 0:
        return
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()
        by_shard = {client.get_node_from_key(hash_tag(t)).name: t for t in tenants}
        tenants = by_shard.values()
    targets = {t: int((await _info(client, t))["master_repl_offset"]) for t in tenants}
    deadline = asyncio.get_running_loop().time() + timeout_s
    for tenant, offset in targets.items():
        while sum(o >= offset for o in _replica_offsets(await _info(client, tenant))) < replicas:
            if asyncio.get_running_loop().time() > deadline:
                raise ReplicationLag(f"fewer than {replicas} replicas confirmed the writes "
                                     f"within {timeout_s}s")  # fmt: skip
            await asyncio.sleep(0.002)
