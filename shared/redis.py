"""Redis connection factory and readiness checks.

The protocol is pinned to RESP2: redis-py 8 defaults to RESP3, where raw ``FT.*`` replies become
dicts; the search code parses RESP2 replies.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import BusyLoadingError, ConnectionError, ResponseError, TimeoutError

from shared.settings import RedisSettings

log = logging.getLogger(__name__)

RESP_PROTOCOL = 2


async def command(client: aioredis.Redis, *args: object) -> Any:
    """A raw command (FT.*, which redis-py does not type); RESP2 reply. On a cluster, a
    tenant's FT.* goes to the node of its index's hash tag (each index lives on the shard that
    holds its tenant's slot) and ``FT._LIST`` asks every primary."""
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()  # the slot map (once; the client learns moves by itself)
        name = str(args[0]).upper()
        if name == "FT._LIST":  # each index is on its tenant's primary: ask them all
            listed = await on_every_primary(client, *args)
            return list(dict.fromkeys(index for names in listed for index in names))
        if name.startswith("FT.") and len(args) > 1:
            node = client.get_node_from_key(str(args[1]))
            return await client.execute_command(*args, target_nodes=node)
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


async def on_every_primary(client: aioredis.Redis, *args: object) -> list[Any]:
    """A command run on every primary (one reply per primary; a single Redis is one)."""
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()
        replies = await client.execute_command(*args, target_nodes=client.PRIMARIES)
        return list(replies.values()) if isinstance(replies, dict) else [replies]
    return [await client.execute_command(*args)]  # type: ignore[no-untyped-call]


async def _loading(client: aioredis.Redis) -> bool:
    """Whether Redis (on a cluster: any primary) is still loading its data set."""
    if isinstance(client, aioredis.RedisCluster):
        replies = await client.info("persistence", target_nodes=client.PRIMARIES)
        return any(int(info.get("loading", 0)) for info in replies.values())
    return bool(int((await client.info("persistence")).get("loading", 0)))


async def preload_scripts(client: aioredis.Redis, *scripts: AsyncScript) -> None:
    """Before a pipeline of script calls: a single Redis' pipeline loads its scripts itself, a
    cluster's does not (each node would answer NOSCRIPT), so on a cluster every primary loads
    them here (SCRIPT LOAD goes to all primaries; cheap when already loaded, and it covers a
    replica promoted since)."""
    if isinstance(client, aioredis.RedisCluster):
        for script in scripts:
            await client.script_load(script.script)


def as_text(value: object) -> str:
    """A reply value as text (clients from ``make_redis`` return bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def make_redis(settings: RedisSettings) -> aioredis.Redis:
    """An asyncio Redis client (bytes replies, RESP2) for the configured URL. Its pool blocks:
    a burst of concurrent searches waits for a connection instead of failing.

    With ``cluster`` set, a cluster client: it offers the commands the services use under the
    same API (keyed commands, scripts and transactions go to their slot's node; ``command``
    routes FT.*), so it is typed as the single-node client."""
    if settings.cluster:
        cluster = aioredis.RedisCluster.from_url(
            settings.url.get_secret_value(),
            max_connections=settings.max_connections,
            protocol=RESP_PROTOCOL,
            decode_responses=False,
            socket_timeout=settings.socket_timeout_s,
            socket_connect_timeout=settings.socket_timeout_s,
            **settings.auth(),
        )
        return cast(aioredis.Redis, cluster)
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.url.get_secret_value(),
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout_s,
        protocol=RESP_PROTOCOL,
        decode_responses=False,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_timeout_s,
        health_check_interval=15,
        **settings.auth(),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose closes it


async def wait_until_loaded(client: aioredis.Redis, *, timeout_s: float = 300.0) -> None:
    """Wait until Redis answers and has finished loading its data set (AOF/RDB) after a restart."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await client.ping()
            if not await _loading(client):
                return
        except (BusyLoadingError, ConnectionError, TimeoutError, OSError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("Redis did not become ready in time")
        await asyncio.sleep(0.2)


async def index_ready(client: aioredis.Redis, index: str) -> bool:
    """True when the search index exists and has indexed every document."""
    try:
        raw = await command(client, "FT.INFO", index)
    except ResponseError:
        return False
    info = dict(zip(raw[::2], raw[1::2], strict=True))
    indexing = int(info.get(b"indexing", 0))
    percent = float(info.get(b"percent_indexed", 1))
    return indexing == 0 and percent >= 1.0


async def drop_index(client: aioredis.Redis, index: str) -> None:
    """Drop a search index, its documents kept; one already gone (another pod dropped it
    first) is no error."""
    try:
        await command(client, "FT.DROPINDEX", index)
    except ResponseError as exc:
        if not is_missing_index(exc):
            raise


def is_missing_index(exc: Exception) -> bool:
    """Whether a RediSearch error says the index does not exist (a tenant without rules)."""
    message = str(exc).lower()
    return "unknown index" in message or "no such index" in message
