"""Per-rule locks: the two lanes (``rules.events`` and ``rules.live``) never write the same rule
at once in one ingest process. Taken in sorted order, so two batches cannot deadlock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Iterable


class RuleLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: dict[Hashable, int] = {}

    @contextlib.asynccontextmanager
    async def holding(self, keys: Iterable[tuple[str, str]]) -> AsyncIterator[None]:
        wanted = sorted(set(keys))
        for key in wanted:
            self._users[key] = self._users.get(key, 0) + 1
        taken: list[asyncio.Lock] = []
        try:
            for key in wanted:
                lock = self._locks.setdefault(key, asyncio.Lock())
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for key in wanted:  # forget a rule's lock once no batch holds or awaits it
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]

    async def wait_free(self, keys: Iterable[tuple[str, str]]) -> None:
        """Wait until no batch holds these rules (holding none meanwhile, so no deadlock)."""
        for key in sorted(set(keys)):
            lock = self._locks.get(key)
            if lock is not None and lock.locked():
                async with self.holding([key]):
                    pass

    def held(self) -> int:
        """Rules locked or awaited now (0 when idle: nothing is kept)."""
        return len(self._locks)
