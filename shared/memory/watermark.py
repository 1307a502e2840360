"""How far the memory has applied the rule log: for each partition of ``rules.events``, the
offset after the last record ingest applied (Kafka's "next offset"), in one Redis hash.

Ingest raises it after each batch of the log lane (never lowers it: a redelivered batch or a
rebalance replays older offsets). Retrieval reads it before each search, so an answer can say
which state of the memory it was grounded in (``memory_watermark``), and a request can ask for
"at least this watermark" (``min_watermark``, e.g. the one a publisher got back for its edit):
retrieval waits, bounded, until the memory has applied it. Edits applied first through the fast
lane count once the log lane reaches them: the watermark is conservative, never ahead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

# KEYS: the watermark hash. ARGV: partition, offset, partition, offset, ... Raises only.
_ADVANCE = """
for i = 1, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""

Watermark = dict[int, int]
"""Partition of ``rules.events`` -> the next offset to apply."""


def covers(have: Mapping[int, int], wanted: Mapping[int, int]) -> bool:
    """Whether every partition of ``wanted`` is applied at least that far in ``have``."""
    return all(have.get(partition, 0) >= offset for partition, offset in wanted.items())


def merged(*watermarks: Mapping[int, int]) -> Watermark:
    """The furthest offset of each partition among the watermarks."""
    result: Watermark = {}
    for watermark in watermarks:
        for partition, offset in watermark.items():
            result[partition] = max(offset, result.get(partition, 0))
    return result


def raw_watermark(raw_message: Any) -> Watermark:
    """The watermark just past a consumed batch (aiokafka records, or one record)."""
    records = raw_message if isinstance(raw_message, list | tuple) else [raw_message]
    return merged(*({r.partition: r.offset + 1} for r in records))


class MemoryWatermark:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}:watermark:rules"
        self._advance = client.register_script(_ADVANCE)

    async def advance(self, watermark: Mapping[int, int]) -> None:
        if watermark:
            args = [value for item in sorted(watermark.items()) for value in item]
            await self._advance(keys=[self.key], args=args)

    async def read(self) -> Watermark:
        raw = await self.client.hgetall(self.key)
        return {int(p): int(o) for p, o in raw.items()}

    async def wait_for(
        self, wanted: Mapping[int, int], *, timeout_s: float, poll_s: float = 0.02
    ) -> tuple[Watermark, bool]:
        """The watermark once it covers ``wanted``, or as it stands after ``timeout_s``; and
        whether it covers it."""
        deadline = time.monotonic() + timeout_s
        while True:
            have = await self.read()
            if covers(have, wanted):
                return have, True
            if time.monotonic() >= deadline:
                return have, False
            await asyncio.sleep(poll_s)
