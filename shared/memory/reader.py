"""Reading the rules the memory holds now, without searching: one rule, or a tenant's rules a
page at a time (the rules API). The version ledger lists every rule the memory has applied
(a deleted rule holds ``-version``), so pages follow it with ``HSCAN`` (no index needed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import redis.asyncio as aioredis

from shared.memory.schema import ALWAYS_FROM, EPOCH, FOREVER_UNTIL, TAG_SEPARATOR, RuleSchema
from shared.redis import as_text

FIELDS = ("rule_id", "version", "title", "text", "domain", "jurisdiction_label", "locale",
          "status", "tags", "priority", "eff_from", "eff_until", "source")  # fmt: skip
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class StoredRule:
    rule_id: str
    version: int
    title: str
    text: str
    domain: str
    jurisdiction: str
    locale: str | None
    status: str
    tags: tuple[str, ...]
    priority: int
    effective_from: date | None
    effective_until: date | None
    source: str | None


def _day(value: str, never: int) -> date | None:
    number = int(value or never)
    return None if number == never else date.fromordinal(number + EPOCH)


def _stored(values: list[bytes | str | None]) -> StoredRule | None:
    if values[0] is None:  # no document (deleted, or not written yet)
        return None
    f = dict(zip(FIELDS, (as_text(v) if v is not None else "" for v in values), strict=True))
    return StoredRule(
        rule_id=f["rule_id"], version=int(f["version"]), title=f["title"], text=f["text"],
        domain=f["domain"], jurisdiction=f["jurisdiction_label"], locale=f["locale"] or None,
        status=f["status"], tags=tuple(t for t in f["tags"].split(TAG_SEPARATOR) if t),
        priority=int(f["priority"] or 0), effective_from=_day(f["eff_from"], ALWAYS_FROM),
        effective_until=_day(f["eff_until"], FOREVER_UNTIL), source=f["source"] or None,
    )  # fmt: skip


class RuleReader:
    def __init__(self, client: aioredis.Redis, schema: RuleSchema) -> None:
        self.client = client
        self.schema = schema

    async def version(self, tenant: str, rule_id: str) -> int:
        """The version the memory applied last (negative: deleted; 0: never seen)."""
        raw = await self.client.hget(self.schema.versions_key(tenant), rule_id)
        return int(raw or 0)

    async def get(self, tenant: str, rule_id: str) -> StoredRule | None:
        values = await self.client.hmget(self.schema.doc_key(tenant, rule_id), list(FIELDS))
        return _stored(values)

    async def page(
        self, tenant: str, *, cursor: int = 0, limit: int = 100
    ) -> tuple[list[StoredRule], int]:
        """About ``limit`` live rules from ``cursor`` (0: the start), in ledger order, and the
        cursor of the next page (0: none)."""
        limit = max(1, min(limit, MAX_PAGE))
        next_cursor, ledger = await self.client.hscan(self.schema.versions_key(tenant),
                                                      cursor=cursor, count=limit)  # fmt: skip
        assert isinstance(ledger, dict)
        live = sorted(as_text(r) for r, v in ledger.items() if int(v) > 0)
        pipe = self.client.pipeline(transaction=False)
        for rule_id in live:
            pipe.hmget(self.schema.doc_key(tenant, rule_id), list(FIELDS))
        rules = [r for r in map(_stored, await pipe.execute()) if r is not None]
        return rules, int(next_cursor)
