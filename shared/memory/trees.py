"""Each tenant's declared jurisdiction tree in Redis, replaced only by a higher version.

``{prefix}:jurisdictions:{tenant}`` is a HASH of ``version`` and ``tree`` (the event's JSON).
A Lua script compares versions atomically, so a replayed or older tree changes nothing, as
with rules. ``memory rebuild --drop`` keeps it (it is not a rule document).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.events import JurisdictionTree
from shared.memory.keys import RuleKeys

# KEYS: the tree hash. ARGV: version, JSON.
_PUT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'tree', ARGV[2])
return 1
"""


class JurisdictionStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = RuleKeys(prefix)
        self._put = client.register_script(_PUT)

    def key(self, tenant: str) -> str:
        return self.keys.jurisdictions_key(tenant)

    async def put(self, tree: JurisdictionTree) -> bool:
        """Store the tree if its version is higher than the stored one; True if it was."""
        result = await self._put(
            keys=[self.key(tree.tenant)], args=[tree.version, tree.model_dump_json()]
        )
        return bool(result)

    async def get(self, tenant: str) -> JurisdictionTree | None:
        raw = await self.client.hget(self.key(tenant), "tree")
        return None if raw is None else JurisdictionTree.model_validate_json(raw)
