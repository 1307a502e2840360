"""The audit chainer: appends each entry of ``audit.entries`` to its tenant's hash chain on
``audit.log``, once per entry, with no gap and no fork.

``audit.entries`` is keyed by tenant, so one consumer handles a tenant's entries in order. The
chain's head per tenant (``{prefix}:audit:head:{tenant}``: ``seq``, ``hash``, per source
partition the position of the last entry chained, ``offset.index`` (a record holds one entry or
one tenant's batch), and the ``pending`` link) lives in Redis. An entry at or below the head's
position is chained already and skipped. Otherwise the head advances first,
atomically and only from the head the link was computed from (two consumers overlapping in a
rebalance cannot both take a sequence number), with the new link kept as ``pending``; then the
link is published (acknowledged) and ``pending`` cleared. Whoever next reads the head publishes
a link still pending (a crash between the two steps): at worst the same link twice, which
``audit verify`` counts as a repeat, never a gap or a fork.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from shared import events
from shared.audit_chain import GENESIS, link
from shared.dlq import Record
from shared.memory.keys import RuleKeys
from shared.redis import as_text

# KEYS: the head. ARGV: expected seq, new seq, new hash, partition field, offset, link JSON.
_ADVANCE = """
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'hash', ARGV[3], ARGV[4], ARGV[5], 'pending', ARGV[6])
return 1
"""
# KEYS: the head. ARGV: the published link's JSON. Clears it if it is still the pending one.
_PUBLISHED = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then redis.call('HDEL', KEYS[1], 'pending') end
return 1
"""


def _position(stored: str | None) -> tuple[int, float]:
    """A head's last chained position in a partition: ``offset.index`` (a record written
    before batches, ``offset``, had one entry: all of it is chained)."""
    if stored is None:
        return (-1, 0)
    offset, _, index = stored.partition(".")
    return (int(offset), float(index) if index else float("inf"))


PublishLink = Callable[[events.AuditLink], Awaitable[None]]
"""Publishes a link to ``audit.log`` and returns once the broker acknowledged it."""


class AuditChainer:
    def __init__(self, client: aioredis.Redis, prefix: str, publish: PublishLink) -> None:
        self.client = client
        self.keys = RuleKeys(prefix)
        self.publish = publish
        self._advance = client.register_script(_ADVANCE)
        self._published = client.register_script(_PUBLISHED)

    def head_key(self, tenant: str) -> str:
        return self.keys.audit_head_key(tenant)

    async def chain_record(
        self, record: Record, item: events.AuditRecord
    ) -> list[events.AuditLink | None]:
        """Every entry of a record (an entry, or a tenant's batch), in order."""
        return [await self.chain(record, entry, index)
                for index, entry in enumerate(events.entries_of(item))]  # fmt: skip

    async def chain(
        self, record: Record, entry: events.AuditEntry, index: int = 0
    ) -> events.AuditLink | None:
        """The link of the record's ``index``-th entry, published; None when it was chained
        before (the head keeps, per source partition, the position of the last entry chained:
        ``offset.index``)."""
        key = self.head_key(entry.tenant)
        head = {as_text(k): as_text(v) for k, v in (await self.client.hgetall(key)).items()}
        if "pending" in head:
            await self._publish(key, events.AuditLink.model_validate_json(head["pending"]))
        source = f"p{record.partition}"
        if record.offset is not None and (record.offset, index) <= _position(head.get(source)):
            return None
        seq = int(head.get("seq", "0"))
        appended = link(entry, seq + 1, head.get("hash", GENESIS))
        taken = await self._advance(keys=[key], args=[
            seq, seq + 1, appended.hash, source, f"{record.offset or 0}.{index}",
            appended.model_dump_json(),
        ])  # fmt: skip
        if not taken:
            # Another consumer chained this tenant meanwhile (a rebalance): the batch is
            # redelivered and this entry then skipped or chained after theirs.
            raise RuntimeError(f"audit chain of {entry.tenant} moved during append; retrying")
        await self._publish(key, appended)
        return appended

    async def _publish(self, key: str, pending: events.AuditLink) -> None:
        await self.publish(pending)
        await self._published(keys=[key], args=[pending.model_dump_json()])
