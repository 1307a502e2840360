"""Create, migrate and wait for the per-tenant rule indexes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.memory.layout import move_to_tagged_layout
from shared.memory.schema import RuleSchema
from shared.redis import (
    as_text,
    command,
    drop_index,
    index_ready,
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

    async def _names(self) -> list[str]:
        """Every index of this prefix (physical names: FT._LIST lists no aliases)."""
        names = (as_text(n) for n in await command(self.client, "FT._LIST"))
        return [n for n in names if self.schema.tenant_of_index(n) is not None]

    async def tenants(self) -> list[str]:
        """Tenants that have an index."""
        return self._tenants_of(await self._names())

    def _tenants_of(self, names: Sequence[str]) -> list[str]:
        return sorted({t for n in names if (t := self.schema.tenant_of_index(n)) is not None})

    async def migrate(self, *, timeout_s: float = 3600.0) -> None:
        """At startup: if the schema fingerprint changed, upgrade every tenant's index
        (``upgrade``: built beside the old one, swapped in by alias once complete).

        Documents stay and are indexed again by RediSearch; documents embedded by another model
        (dimension change) need ``alignstream memory rebuild --drop``. Redis must have loaded
        its data (``open_indexes`` waits for it first).
        """
        stored = await self.client.get(self.schema.meta_key)
        names = await self._names()
        tenants = self._tenants_of(names)
        if stored != self.schema.fingerprint.encode():
            for tenant in tenants:
                await self.upgrade(tenant, names, timeout_s=timeout_s)
            await self.client.set(self.schema.meta_key, self.schema.fingerprint)
        self._known = set(tenants)

    async def upgrade(self, tenant: str, names: Sequence[str], *, timeout_s: float) -> None:
        """The tenant's index of this schema, built beside its current one; the alias moves to
        it once it covers every document, then the old one is dropped (documents stay). Pods of
        either version search a complete index throughout the upgrade."""
        new = self.schema.physical_index(tenant, self.schema.fingerprint)
        old = [n for n in names if n != new and self.schema.tenant_of_index(n) == tenant]
        log.warning("rule index schema changed; building the new index beside the old",
                    extra={"tenant": tenant, "old": old})  # fmt: skip
        await _create_physical(self.client, self.schema, tenant)
        await _wait_indexed(self.client, new, _deadline(timeout_s))
        alias = self.schema.index_name(tenant)
        if alias in old:  # an index under the alias' own name (made before aliases): it goes first
            await drop_index(self.client, alias)
        await command(self.client, "FT.ALIASUPDATE", alias, new)
        for name in old:
            if name != alias:
                await drop_index(self.client, name)

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

    async def wait_ready(self, *, timeout_s: float = 600.0) -> None:
        """Block until Redis has loaded its data and every index covers all its documents, so a
        service never answers from a half-loaded index after a Redis restart."""
        await wait_until_loaded(self.client, timeout_s=timeout_s)
        deadline = _deadline(timeout_s)
        for tenant in await self.tenants():
            await _wait_indexed(self.client, self.schema.index_name(tenant), deadline)


async def _create_physical(client: aioredis.Redis, schema: RuleSchema, tenant: str) -> None:
    try:
        await command(client, "FT.CREATE", *schema.create_args(tenant))
    except ResponseError as exc:  # another replica created it first
        if "already exists" not in str(exc).lower():
            raise


async def create_index(client: aioredis.Redis, schema: RuleSchema, tenant: str) -> None:
    """The tenant's index of this schema, under its alias (idempotent: replicas race)."""
    await _create_physical(client, schema, tenant)
    new = schema.physical_index(tenant, schema.fingerprint)
    await command(client, "FT.ALIASUPDATE", schema.index_name(tenant), new)


def _deadline(timeout_s: float) -> float:
    return asyncio.get_running_loop().time() + timeout_s


async def _wait_indexed(client: aioredis.Redis, index: str, deadline: float) -> None:
    """Until the index covers every document; TimeoutError past ``deadline`` (loop time)."""
    while not await index_ready(client, index):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"rule index {index} is not ready in time")
        await asyncio.sleep(0.05)


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
    await _wait_indexed(client, schema.index_name(tenant), _deadline(timeout_s))
    return True


async def open_indexes(
    client: aioredis.Redis, schema: RuleSchema, *, ready_timeout_s: float = 600.0
) -> RuleIndexes:
    """Migrate if needed and wait until every index is ready: what services do at startup.
    Redis loading its data and the indexes catching up share ``ready_timeout_s`` (a chart's
    start-up probe must allow it: ``memory_ready_timeout_s``)."""
    indexes = RuleIndexes(client, schema)
    deadline = _deadline(ready_timeout_s)
    await wait_until_loaded(client, timeout_s=ready_timeout_s)
    moved = await move_to_tagged_layout(client, schema)
    await indexes.migrate()
    for tenant in moved:  # re-created under their new names (they index the renamed documents)
        await indexes.ensure(tenant)
    await indexes.wait_ready(timeout_s=max(1.0, deadline - asyncio.get_running_loop().time()))
    return indexes
