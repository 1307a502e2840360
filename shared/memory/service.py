"""The base of services that work on the rule memory (ingest, retrieval)."""

from __future__ import annotations

from shared.embedders import Embedder
from shared.memory.index import RuleIndexes, open_indexes
from shared.memory.schema import RuleSchema
from shared.redis import make_redis
from shared.service import Service
from shared.settings import ServiceSettings


class RuleMemoryService(Service):
    """Starts the embedder, connects Redis and opens (migrates, waits for) the rule indexes
    before consuming; closes both after."""

    def __init__(self, settings: ServiceSettings, embedder: Embedder) -> None:
        super().__init__(settings)
        self.embedder = embedder
        self.indexes: RuleIndexes | None = None

    async def on_start(self) -> None:
        await self.embedder.start()
        redis = self.settings.redis
        schema = RuleSchema(redis.key_prefix, self.embedder.dim, self.embedder.name)
        self.indexes = await open_indexes(make_redis(redis), schema)

    def running_indexes(self) -> RuleIndexes:
        """The rule indexes of a started service."""
        assert self.indexes is not None, "service not started"
        return self.indexes

    async def on_stop(self) -> None:
        await self.embedder.close()
        if self.indexes is not None:
            await self.indexes.client.aclose()
