"""Create, migrate and wait for the per-tenant rule indexes."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.memory.layout import move_to_tagged_layout
from shared.memory.schema import RuleSchema
from shared.redis import (
    command,
    index_ready,
    is_missing_index,
    wait_until_loaded,
)

log = logging.getLogger(__name__)


class RuleIndexes:
    """The tenant indexes of one schema; creates a tenant's index on its first rule.

    On a Redis Cluster a tenant's index lives on the primary that holds its slot (the module
    treats the index name as a key: another primary refuses it with MOVED, so an index cannot
    wait on every primary). When the slot migrates, the first search that finds no index on
    the new owner creates it there (``recreate_after_move``)."""

    def __init__(self, client: aioredis.Redis, schema: RuleSchema) -> None:
        self.client = client
        self.schema = schema
        self._known: set[str] = set()

    async def tenants(self) -> list[str]:
        """Tenants that have an index."""
        names = await command(self.client, "FT._LIST")
        found = (self.schema.tenant_of_index(n.decode()) for n in names)
        return sorted(t for t in found if t is not None)

    async def migrate(self) -> None:
        """At startup: if the schema fingerprint changed, re-create every tenant's index.

        Documents stay and are re-indexed by RediSearch; documents embedded by another model
        (dimension change) need ``alignstream memory rebuild --drop``.
        """
        await wait_until_loaded(self.client)
        stored = await self.client.get(self.schema.meta_key)
        tenants = await self.tenants()
        if stored != self.schema.fingerprint.encode():
            for tenant in tenants:
                log.warning("rule index schema changed; re-creating", extra={"tenant": tenant})
                await self._drop(tenant)
                await self._create(tenant)
            await self.client.set(self.schema.meta_key, self.schema.fingerprint)
        self._known = set(tenants)

    async def ensure(self, tenant: str) -> None:
        """Make sure the tenant's index exists (cheap after the first call)."""
        if tenant in self._known:
            return
        try:
            await command(self.client, "FT.INFO", self.schema.index_name(tenant))
        except ResponseError:
            await self._create(tenant)
        self._known.add(tenant)

    async def _create(self, tenant: str) -> None:
        await create_index(self.client, self.schema, tenant)

    async def _drop(self, tenant: str) -> None:
        """The tenant's index (its documents stay)."""
        try:
            await command(self.client, "FT.DROPINDEX", self.schema.index_name(tenant))
        except ResponseError as exc:
            if not is_missing_index(exc):
                raise

    async def wait_ready(self, *, timeout_s: float = 600.0) -> None:
        """Block until Redis has loaded its data and every index covers all its documents, so a
        service never answers from a half-loaded index after a Redis restart."""
        await wait_until_loaded(self.client, timeout_s=timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout_s
        for tenant in await self.tenants():
            while not await index_ready(self.client, self.schema.index_name(tenant)):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"rule index of {tenant} not ready after {timeout_s}s")
                await asyncio.sleep(0.2)


async def create_index(client: aioredis.Redis, schema: RuleSchema, tenant: str) -> None:
    try:
        await command(client, "FT.CREATE", *schema.create_args(tenant))
    except ResponseError as exc:  # another replica created it first
        if "already exists" not in str(exc).lower():
            raise


async def recreate_after_move(
    client: aioredis.Redis, schema: RuleSchema, tenant: str, *, timeout_s: float = 60.0
) -> bool:
    """After a search found no index of ``tenant``: on a cluster, a tenant that has a memory
    (its version ledger) had its slot migrated; its index is created on the new owner, which
    indexes the documents it took, and True once complete (search again). False: the tenant
    has no rules (no index is due)."""
    if not isinstance(client, aioredis.RedisCluster) or not await client.exists(
        schema.versions_key(tenant)
    ):
        return False
    log.warning("rule index missing on the tenant's shard; re-creating", extra={"tenant": tenant})
    await create_index(client, schema, tenant)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await index_ready(client, schema.index_name(tenant)):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the rule index of {tenant} is not ready after {timeout_s}s")
        await asyncio.sleep(0.05)
    return True


async def open_indexes(client: aioredis.Redis, schema: RuleSchema) -> RuleIndexes:
    """Migrate if needed and wait until every index is ready: what services do at startup."""
    indexes = RuleIndexes(client, schema)
    await wait_until_loaded(client)
    moved = await move_to_tagged_layout(client, schema)
    await indexes.migrate()
    for tenant in moved:  # re-created under their new names (they index the renamed documents)
        await indexes.ensure(tenant)
    await indexes.wait_ready()
    return indexes
