"""Every version of every rule: what ``rules history`` lists and ``rules rollback`` restores.

The rules topic is compacted, so it keeps only each rule's newest event: it cannot be the
history. Ingest records each rule event it consumes in Redis before applying it (and so does a
``memory rebuild``): ``{prefix}:history:{tenant}:{rule_id}`` is a sorted set scored by version,
one JSON entry per version. An entry is added only while no entry holds its version, so a
redelivered or replayed event adds nothing and the first record of a version stays, as the
ledger keeps it. The newest ``max_versions`` entries of a rule are kept (a publisher could
otherwise grow one rule's history without end). ``memory rebuild --drop`` drops rule documents
only; the history stays. Redis persistence (AOF) is what makes it durable: a Redis lost with
its files keeps, after a rebuild, only what the compacted log still holds (the newest version
of each rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict

from shared.dlq import Record
from shared.events import Rule, RuleDelete, RuleEvent, RulesTopicEvent, RuleUpsert, utcnow
from shared.memory.keys import RuleKeys
from shared.redis import as_text, preload_scripts
from shared.signing import RecordSigner, SignatureStatus

DEFAULT_MAX_VERSIONS = 1000

# KEYS: the rule's history. ARGV: version, entry JSON, versions kept. 1 when added.
_ADD = """
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) > 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
return 1
"""


class HistoryEntry(BaseModel):
    """One published version of a rule, as ingest consumed it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    rule_id: str
    version: int
    op: Literal["upsert", "delete"]
    event_id: str
    event_time: datetime
    """When the publisher created the event."""
    recorded_at: datetime
    """When ingest first consumed it."""
    publisher: str | None
    signature: SignatureStatus
    source: str
    """Where the record was read: ``topic/partition@offset``."""
    rule: Rule | None = None
    """The version's content (None for a delete)."""

    @classmethod
    def of(cls, record: Record, event: RuleEvent, signature: SignatureStatus) -> HistoryEntry:
        tenant, rule_id, version = event.target
        return cls(
            tenant=tenant, rule_id=rule_id, version=version, op=event.op,
            event_id=event.event_id, event_time=event.created_at, recorded_at=utcnow(),
            publisher=event.publisher, signature=signature,
            source=f"{record.topic}/{record.partition}@{record.offset}",
            rule=event.rule if isinstance(event, RuleUpsert) else None,
        )  # fmt: skip


def history_entries(
    opened: Sequence[tuple[Record, RulesTopicEvent]], signer: RecordSigner
) -> list[HistoryEntry]:
    """The history entries of a batch's rule events (jurisdiction trees and change sets have
    none: a staged version enters the history when its promote republishes it), with how each
    record was signed (the signer already accepted every one of them)."""
    return [HistoryEntry.of(record, event, signer.status(record))
            for record, event in opened if isinstance(event, RuleUpsert | RuleDelete)]  # fmt: skip


class RuleHistory:
    def __init__(
        self, client: aioredis.Redis, prefix: str, *, max_versions: int = DEFAULT_MAX_VERSIONS
    ) -> None:
        self.client = client
        self.keys = RuleKeys(prefix)
        self.max_versions = max_versions
        self._add = client.register_script(_ADD)

    def key(self, tenant: str, rule_id: str) -> str:
        return self.keys.history_key(tenant, rule_id)

    async def record(self, entries: Sequence[HistoryEntry]) -> list[bool]:
        """Add each entry unless its version is there already; True where it was added."""
        if not entries:
            return []
        await preload_scripts(self.client, self._add)
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (scripts are atomic)
        for entry in entries:
            await self._add(
                keys=[self.key(entry.tenant, entry.rule_id)],
                args=[entry.version, entry.model_dump_json(), self.max_versions],
                client=pipe,
            )
        return [bool(added) for added in await pipe.execute()]

    async def versions(
        self, tenant: str, rule_id: str, *, limit: int = 100, before: int | None = None
    ) -> list[HistoryEntry]:
        """Newest first: up to ``limit`` entries below version ``before`` (None: from the
        newest)."""
        top = f"({before}" if before is not None else "+inf"
        raw = await self.client.zrevrangebyscore(
            self.key(tenant, rule_id), top, "-inf", start=0, num=max(1, limit)
        )
        return [HistoryEntry.model_validate_json(as_text(value)) for value in raw]

    async def at(self, tenant: str, rule_id: str, version: int) -> HistoryEntry | None:
        raw = await self.client.zrangebyscore(self.key(tenant, rule_id), version, version)
        return HistoryEntry.model_validate_json(as_text(raw[0])) if raw else None

    async def newest_version(self, tenant: str, rule_id: str) -> int:
        """The highest version published (0: none recorded)."""
        top = await self.client.zrevrange(self.key(tenant, rule_id), 0, 0, withscores=True)
        return int(top[0][1]) if top else 0
