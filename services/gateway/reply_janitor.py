"""Reply topics of gateway instances that crashed: found and deleted by the live ones.

Each gateway instance reads its own ``replies.<instance>`` topic and deletes it on a clean
shutdown. An instance killed (OOM, node lost) leaves its topic behind, and a fleet that scales
up and down would pile them up. So each instance registers its topic in Redis before creating it
and keeps a lease on it (a key with a TTL, renewed every third of it); every instance sweeps the
registered topics now and then and deletes those whose lease ran out. Only registered topics are
ever deleted: a client's own reply topic is not a gateway's and is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from services.gateway.metrics import REPLY_TOPICS_SWEPT
from shared.memory.keys import RuleKeys

log = logging.getLogger(__name__)

DeleteTopics = Callable[[list[str]], Awaitable[None]]


class ReplyTopicJanitor:
    def __init__(
        self,
        redis: Redis,
        keys: RuleKeys,
        topic: str,
        delete_topics: DeleteTopics,
        *,
        lease_s: float = 90.0,
        sweep_every_s: float = 300.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.topic = topic
        self.delete_topics = delete_topics
        self.lease_ms = int(lease_s * 1000)
        self.sweep_every_s = sweep_every_s
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """Before the topic is created: the lease first, so no sweep takes it for a dead one."""
        await self.redis.set(self.keys.reply_topic_lease_key(self.topic), b"1", px=self.lease_ms)
        await self.redis.sadd(self.keys.reply_topics_key, self.topic)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def release(self) -> None:
        """After this instance deleted its topic (a clean shutdown)."""
        await self.redis.srem(self.keys.reply_topics_key, self.topic)
        await self.redis.delete(self.keys.reply_topic_lease_key(self.topic))

    async def sweep(self) -> list[str]:
        """Delete the registered topics whose lease ran out; the topics deleted."""
        members = await self.redis.smembers(self.keys.reply_topics_key)
        topics = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        pipe = self.redis.pipeline(transaction=False)
        for topic in topics:
            pipe.exists(self.keys.reply_topic_lease_key(topic))
        alive = await pipe.execute()
        orphans = [t for t, live in zip(topics, alive, strict=True) if not live and t != self.topic]
        if not orphans:
            return []
        await self.delete_topics(orphans)
        await self.redis.srem(self.keys.reply_topics_key, *orphans)
        REPLY_TOPICS_SWEPT.inc(len(orphans))
        log.info("deleted the reply topics of gateways gone", extra={"topics": orphans})
        return orphans

    async def _run(self) -> None:
        renew_s = self.lease_ms / 3000
        until_sweep = 0.0
        while True:
            try:
                await self.redis.set(self.keys.reply_topic_lease_key(self.topic), b"1",
                                     px=self.lease_ms)  # fmt: skip
                if until_sweep <= 0:
                    await self.sweep()
                    until_sweep = self.sweep_every_s
            except Exception:  # Redis or the broker down: the next round tries again
                log.warning("reply topic lease or sweep failed", exc_info=True)
            await asyncio.sleep(renew_s)
            until_sweep -= renew_s
