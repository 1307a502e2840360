"""Rules to write questions about, sampled from a tenant's memory in Redis."""

from __future__ import annotations

import random
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.memory.keys import RuleKeys
from shared.redis import as_text


@dataclass(frozen=True, slots=True)
class SourceRule:
    rule_id: str
    version: int
    text: str
    jurisdiction: str

    @property
    def ref(self) -> str:
        return f"{self.rule_id}@{self.version}"


async def sample_rules(
    redis: aioredis.Redis, key_prefix: str, tenant: str, count: int, seed: int = 0
) -> list[SourceRule]:
    """``count`` active rules of the tenant, drawn with ``seed`` (fewer if it has fewer)."""
    prefix = RuleKeys(key_prefix).doc_prefix(tenant)
    keys = sorted([k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)])
    rules = []
    for key in random.Random(seed).sample(keys, len(keys)):
        rule_id, version, text, jurisdiction, status = await redis.hmget(
            key, ["rule_id", "version", "text", "jurisdiction", "status"]
        )
        if text and as_text(status) == "active":
            fields = (as_text(rule_id), int(as_text(version)), as_text(text), as_text(jurisdiction))
            rules.append(SourceRule(*fields))
        if len(rules) == count:
            break
    return rules
