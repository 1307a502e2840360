"""The settling change sets of a tenant, read before each search.

A promote switches a change set live in one step (``changeset_scripts.PROMOTE``) and its staged
documents move into place afterwards (``SETTLE``, a chunk at a time). Meanwhile every search of
the tenant must see the set's staged documents instead of the live ones they replace: it asks
for them (``RuleFilter.settling``). The read is one HKEYS of a hash that is empty except for
the second or so after a promote.
"""

from __future__ import annotations

from dataclasses import replace

import redis.asyncio as aioredis

from shared.memory.keys import RuleKeys
from shared.memory.query import RuleFilter
from shared.redis import as_text


async def settling_sets(client: aioredis.Redis, schema: RuleKeys, tenant: str) -> list[str]:
    return sorted(as_text(name) for name in await client.hkeys(schema.settling_key(tenant)))


async def as_served(client: aioredis.Redis, schema: RuleKeys, flt: RuleFilter) -> RuleFilter:
    """``flt`` with the tenant's settling sets: what a search must ask for right now."""
    sets = await settling_sets(client, schema, flt.tenant)
    return replace(flt, settling=tuple(sets)) if sets else flt
