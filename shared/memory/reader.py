"""Reading the rules the memory holds now, without ranking: one rule, its applied version (the
version ledger: a deleted rule holds ``-version``), or the rules a filter selects a page at a
time, in rule id order (``rules list``, the rules API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.memory.keys import RuleKeys
from shared.memory.labels import TAG_SEPARATOR
from shared.memory.query import RuleFilter
from shared.memory.schema import (
    ALWAYS_FROM,
    EPOCH,
    FOREVER_UNTIL,
    STAGED,
)
from shared.memory.settling import as_served
from shared.redis import as_text, command, is_missing_index

FIELDS = ("rule_id", "version", "title", "text", "domain", "jurisdiction_label", "locale",
          "status", "tags", "priority", "eff_from", "eff_until", "source", "staged_status",
          "shadow")  # fmt: skip
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
    status = f["staged_status"] if f["status"] == STAGED else f["status"]  # a settling set's
    return StoredRule(
        rule_id=f["rule_id"], version=int(f["version"]), title=f["title"], text=f["text"],
        domain=f["domain"], jurisdiction=f["jurisdiction_label"], locale=f["locale"] or None,
        status=status, tags=tuple(t for t in f["tags"].split(TAG_SEPARATOR) if t),
        priority=int(f["priority"] or 0), effective_from=_day(f["eff_from"], ALWAYS_FROM),
        effective_until=_day(f["eff_until"], FOREVER_UNTIL), source=f["source"] or None,
    )  # fmt: skip


class RuleReader:
    def __init__(self, client: aioredis.Redis, schema: RuleKeys) -> None:
        self.client = client
        self.schema = schema

    async def version(self, tenant: str, rule_id: str) -> int:
        """The version the memory applied last (negative: deleted; 0: never seen)."""
        raw = await self.client.hget(self.schema.versions_key(tenant), rule_id)
        return int(raw or 0)

    async def get(self, tenant: str, rule_id: str) -> StoredRule | None:
        """The rule as searches serve it: while a promoted set settles, its staged version
        (or nothing, for a staged delete) rather than the document it replaces."""
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (reads only)
        pipe.hmget(self.schema.doc_key(tenant, rule_id), list(FIELDS))
        pipe.hkeys(self.schema.settling_key(tenant))
        pipe.hget(self.schema.versions_key(tenant), rule_id)
        values, settling, applied = await pipe.execute()
        shadow = set(as_text(values[-1] or b"").split(TAG_SEPARATOR))
        for name in sorted(shadow & {as_text(n) for n in settling}):
            staged = await self.client.hmget(self.schema.candidate_key(tenant, name, rule_id),
                                             list(FIELDS))  # fmt: skip
            if staged[0] is not None:
                return _stored(staged)
            if int(applied or 0) < 0:
                return None  # a staged delete, settling
        return _stored(values)

    async def select(
        self, flt: RuleFilter, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[StoredRule], int]:
        """The rules ``flt`` selects, in rule id order, from ``offset``: at most ``limit``
        (``MAX_PAGE``), and how many it selects in all."""
        limit = max(1, min(limit, MAX_PAGE))
        flt = await as_served(self.client, self.schema, flt)
        index, query = self.schema.index_name(flt.tenant), flt.expression()
        try:
            counted = await command(self.client, "FT.SEARCH", index, query, "LIMIT", 0, 0,
                                    "DIALECT", 2)  # fmt: skip
            total = int(counted[0])
            if offset >= total:
                return [], total
            # FT.AGGREGATE sorts by a field that is not SORTABLE (FT.SEARCH cannot).
            rows = await command(
                self.client, "FT.AGGREGATE", index, query, "LOAD", 2, "@rule_id", "@__key",
                "SORTBY", 2, "@rule_id", "ASC", "MAX", offset + limit,
                "LIMIT", offset, limit, "DIALECT", 2,
            )  # fmt: skip
        except ResponseError as exc:
            if is_missing_index(exc):
                return [], 0  # a tenant without rules has no index yet
            raise
        # The documents the search selected (a settling set's staged ones among them).
        keys = [dict(zip(row[::2], row[1::2], strict=True))[b"__key"] for row in rows[1:]]
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (reads only)
        for key in keys:
            pipe.hmget(key, list(FIELDS))
        return [r for r in map(_stored, await pipe.execute()) if r is not None], total
