"""Moving a deployment's keys to the hash-tagged layout (``keys.py``, layout 5) in place.

Before layout 5 a tenant's keys named it bare (``p:rule:acme:refunds``); now every one carries
its tag (``p:rule:{acme}:refunds``). A memory of the old layout lives on one Redis (no cluster
could hold it), so each key is renamed where it is: documents, ledgers, trees, change sets,
the audit chain's heads (a chain must continue, not restart), prompt sets and job records.
Old indexes are dropped (documents kept) and re-created under the new names by
``RuleIndexes.migrate``. Idempotent and safe to run from several pods at once: a key already
moved, or moved by another pod first, is skipped; ``{prefix}:meta:key-layout`` records the
end, so later starts cost one GET.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.memory.keys import LAYOUT_VERSION, RuleKeys, hash_tag
from shared.redis import as_text, command, drop_index

log = logging.getLogger(__name__)

TENANT_KINDS = (
    "rule", "ruleversions", "history", "jurisdictions", "shadow", "settling", "changeset",
    "changesets", "audit:head", "prompt_set", "exam", "research",
)  # fmt: skip
"""The kinds of key whose next part was the bare tenant."""
JOB_KINDS = ("exam", "research")


def layout_key(keys: RuleKeys) -> str:
    return f"{keys.prefix}:meta:key-layout"


def tagged_name(keys: RuleKeys, key: str) -> str | None:
    """The layout-5 name of an old-layout key; None when it is no tenant's, or moved already.
    (Job lists and active sets are moved apart: ``_move_job_indexes``.)"""
    for kind in TENANT_KINDS:
        base = f"{keys.prefix}:{kind}:"
        if not key.startswith(base):
            continue
        rest = key.removeprefix(base)
        tenant, sep, tail = rest.partition(":")
        if not tenant or tenant.startswith("{") or (kind in JOB_KINDS and tenant in (
                "jobs", "active", "tenants")):  # fmt: skip
            return None
        return f"{base}{hash_tag(tenant)}{sep}{tail}"
    return None


async def _rename(client: aioredis.Redis, old: str, new: str) -> None:
    try:
        await client.renamenx(old, new)
    except ResponseError as exc:  # moved by another pod first
        if "no such key" not in str(exc).lower():
            raise


async def _move_job_indexes(client: aioredis.Redis, keys: RuleKeys, kind: str) -> None:
    """``{prefix}:{kind}:jobs:{tenant}`` -> the tenant's ``jobs``; the one ``active`` set of
    every tenant's jobs -> per-tenant sets (and the tenants set that lists them)."""
    async for raw in client.scan_iter(match=f"{keys.prefix}:{kind}:jobs:*", count=1000):
        old = as_text(raw)
        await _rename(client, old, keys.jobs_key(kind, old.rsplit(":", 1)[1]))
    old_active = f"{keys.prefix}:{kind}:active"
    for sid in sorted(as_text(m) for m in await client.smembers(old_active)):
        tenant = sid.partition(":")[0]
        await client.sadd(keys.job_tenants_key(kind), tenant)
        await client.sadd(keys.active_jobs_key(kind, tenant), sid)
    await client.delete(old_active)


async def move_to_tagged_layout(client: aioredis.Redis, keys: RuleKeys) -> list[str]:
    """Rename every old-layout key of the prefix; the tenants whose old index was dropped (their
    new index is to be created; none once done)."""
    if await client.get(layout_key(keys)) == str(LAYOUT_VERSION).encode():
        return []
    moved = 0
    for kind in JOB_KINDS:
        await _move_job_indexes(client, keys, kind)
    old_api_keys = f"{keys.prefix}:apikey:"
    async for raw in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
        old = as_text(raw)
        if old.startswith(old_api_keys):  # -> under the tag of API keys (``api_keys_prefix``)
            new: str | None = f"{keys.api_keys_prefix}:apikey:{old.removeprefix(old_api_keys)}"
        else:
            new = tagged_name(keys, old)
        if new is not None:
            await _rename(client, old, new)
            moved += 1
    tenants = []
    for name in await command(client, "FT._LIST"):
        index = as_text(name)
        if index == f"{old_api_keys}index":  # re-created by ``ApiKeys.open`` under the tag
            await drop_index(client, index)
            continue
        if index.startswith(keys.index_prefix) and keys.tenant_of_index(index) is None:
            await drop_index(client, index)  # documents stay (renamed above)
            tenants.append(index.removeprefix(keys.index_prefix))
    await client.set(layout_key(keys), LAYOUT_VERSION)
    if moved:
        log.warning("moved the memory's keys to the hash-tagged layout",
                    extra={"keys": moved, "tenants": len(tenants)})  # fmt: skip
    return tenants
