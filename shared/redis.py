"""Redis connection factory and readiness checks.

The protocol is pinned to RESP2: redis-py 8 defaults to RESP3, where raw ``FT.*`` replies become
dicts; the search code parses RESP2 replies.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError, ConnectionError, ResponseError, TimeoutError

from shared.settings import RedisSettings

log = logging.getLogger(__name__)

RESP_PROTOCOL = 2


async def command(client: aioredis.Redis, *args: object) -> Any:
    """A raw command (FT.*, which redis-py does not type); RESP2 reply."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def as_text(value: object) -> str:
    """A reply value as text (clients from ``make_redis`` return bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def make_redis(settings: RedisSettings) -> aioredis.Redis:
    """An asyncio Redis client (bytes replies, RESP2) for the configured URL. Its pool blocks:
    a burst of concurrent searches waits for a connection instead of failing."""
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
            info = await client.info("persistence")
            if not int(info.get("loading", 0)):
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


def is_missing_index(exc: Exception) -> bool:
    """Whether a RediSearch error says the index does not exist (a tenant without rules)."""
    message = str(exc).lower()
    return "unknown index" in message or "no such index" in message
