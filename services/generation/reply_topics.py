"""Whether a client's reply topic exists, known before its request takes a generation slot.

A request may name any ``replies.<name>`` topic; one that does not exist made the producer wait
for its metadata (``request_timeout_ms``, 40 s) and retry, while the request held its slot:
eight such requests held all eight slots of a small deployment. The cluster's topic list is
read instead (bounded by ``timeout_s``, at most once per ``refresh_s`` however many unknown
names arrive, and again after ``ttl_s`` for names it had), and a request whose reply topic is
not in it is dead-lettered before any generation. A topic removed since the last read still
fails at publish time, where ``ResponseDelivery`` dead-letters it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

ListTopics = Callable[[], Awaitable[set[str]]]


class ReplyTopics:
    def __init__(
        self,
        list_topics: ListTopics,
        *,
        timeout_s: float = 2.0,
        refresh_s: float = 1.0,
        ttl_s: float = 60.0,
    ) -> None:
        self.list_topics = list_topics
        self.timeout_s, self.refresh_s, self.ttl_s = timeout_s, refresh_s, ttl_s
        self._known: set[str] = set()
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def exists(self, topic: str) -> bool:
        age = time.monotonic() - self._read_at
        if topic in self._known and age < self.ttl_s:
            return True
        if age >= self.refresh_s:
            await self._read(since=self._read_at)
        return topic in self._known

    async def _read(self, *, since: float) -> None:
        async with self._lock:
            if self._read_at != since:  # another caller read the list meanwhile
                return
            try:
                self._known = await asyncio.wait_for(self.list_topics(), self.timeout_s)
            except Exception:  # the broker is away: keep what we knew, ask again later
                log.warning("could not list the topics", exc_info=True)
            self._read_at = time.monotonic()
