"""Create, migrate and wait for the rule index."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.memory.schema import RuleSchema
from shared.redis import command, index_ready, wait_until_loaded

log = logging.getLogger(__name__)


async def ensure_index(client: aioredis.Redis, schema: RuleSchema) -> bool:
    """Create the index, or re-create it when the schema fingerprint changed.

    Returns True when the index was (re)created. Existing rule documents stay and are re-indexed
    by RediSearch; documents embedded by another model (dimension change) need
    ``alignstream memory rebuild``.
    """
    await wait_until_loaded(client)
    stored = await client.get(schema.meta_key)
    if stored == schema.fingerprint.encode() and await _exists(client, schema):
        return False
    if await _exists(client, schema):
        log.warning("rule index schema changed; re-creating it", extra={"index": schema.index_name})
        await command(client, "FT.DROPINDEX", schema.index_name)
    try:
        await command(client, "FT.CREATE", *schema.create_args())
    except ResponseError as exc:  # another replica created it first
        if "already exists" not in str(exc).lower():
            raise
    await client.set(schema.meta_key, schema.fingerprint)
    return True


async def _exists(client: aioredis.Redis, schema: RuleSchema) -> bool:
    try:
        await command(client, "FT.INFO", schema.index_name)
    except ResponseError:
        return False
    return True


async def wait_for_index(
    client: aioredis.Redis, schema: RuleSchema, *, timeout_s: float = 600.0
) -> None:
    """Block until Redis has loaded its data and the index covers every document, so a service
    never answers from a half-loaded index after a Redis restart."""
    await wait_until_loaded(client, timeout_s=timeout_s)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await index_ready(client, schema.index_name):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"index {schema.index_name} not ready after {timeout_s}s")
        await asyncio.sleep(0.2)
