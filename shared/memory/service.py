"""The base of services that work on the rule memory (ingest, retrieval)."""

from __future__ import annotations

import time

from shared.embedders import Embedder
from shared.memory.index import RuleIndexes, open_indexes
from shared.memory.schema import RuleSchema
from shared.redis import make_redis, wait_until_loaded
from shared.service import Service
from shared.settings import ServiceSettings


class RuleMemoryService(Service):
    """Starts the embedder, connects Redis and opens (migrates, waits for) the rule indexes
    before consuming; closes both after."""

    def __init__(
        self, settings: ServiceSettings, embedder: Embedder, *, memory_ready_timeout_s: float
    ) -> None:
        super().__init__(settings)
        self.embedder = embedder
        self.memory_ready_timeout_s = memory_ready_timeout_s
        """How long start-up waits for Redis to load and the indexes to catch up."""
        self.indexes: RuleIndexes | None = None

    async def on_start(self) -> None:
        redis = self.settings.redis
        client = make_redis(redis)
        deadline = time.monotonic() + self.memory_ready_timeout_s  # one budget for the memory
        try:  # the memory first (waiting for it, as a service must), then the model
            await wait_until_loaded(client, timeout_s=self.memory_ready_timeout_s)
        except Exception:
            await client.aclose()
            raise
        await self.embedder.start()
        schema = RuleSchema(redis.key_prefix, self.embedder.dim, self.embedder.name)
        left = max(1.0, deadline - time.monotonic())
        self.indexes = await open_indexes(client, schema, ready_timeout_s=left)

    def running_indexes(self) -> RuleIndexes:
        """The rule indexes of a started service."""
        assert self.indexes is not None, "service not started"
        return self.indexes

    async def on_stop(self) -> None:
        await self.embedder.close()
        if self.indexes is not None:
            await self.indexes.client.aclose()
