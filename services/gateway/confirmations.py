"""Ingest's confirmations for the rules API's ``?wait=true``: one tail on ``rules.indexed``
(all partitions, no consumer group) hands each confirmation to the request waiting for its rule
event. Started by the first request that waits (from the topic's end, before that request
publishes), so a gateway that never waits never polls the topic; it polls at a relaxed pace
(a confirmation is awaited by an admin, not on a chat request's path)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from shared import events
from shared.settings import KafkaSettings
from shared.topic_tail import TopicTail
from shared.topics import RULES_INDEXED

log = logging.getLogger(__name__)


class Confirmations:
    def __init__(self, settings: KafkaSettings, *, fetch_max_wait_ms: int = 50) -> None:
        self.settings = settings.model_copy(update={"fetch_max_wait_ms": fetch_max_wait_ms})
        self._tail: TopicTail | None = None
        self._starting = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[events.RuleIndexed]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow the topic from its end (idempotent)."""
        async with self._starting:
            if self._tail is not None:
                return
            tail = TopicTail(self.settings, self.settings.topics(RULES_INDEXED))
            await tail.start()
            self._tail = tail
            self._task = asyncio.create_task(self._follow(tail))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._tail is not None:
            await self._tail.stop()

    @contextlib.asynccontextmanager
    async def waiting(self, event_id: str) -> AsyncIterator[asyncio.Future[events.RuleIndexed]]:
        """Register before publishing the event (its confirmation cannot be missed)."""
        await self.start()
        future = self._waiting[event_id] = asyncio.get_running_loop().create_future()
        try:
            yield future
        finally:
            self._waiting.pop(event_id, None)

    async def _follow(self, tail: TopicTail) -> None:
        while True:
            try:
                values = await tail.values(timeout_ms=200)
            except Exception:  # a broker outage: the tail reconnects; do not spin
                log.warning("reading rules.indexed failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for value in values:
                try:  # a shared topic anyone may write to: skip what is not a confirmation
                    confirmation = events.RuleIndexed.model_validate_json(value)
                except ValueError:
                    continue
                future = self._waiting.get(confirmation.source_event_id)
                if future is not None and not future.done():
                    future.set_result(confirmation)
