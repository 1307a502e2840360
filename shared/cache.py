"""Values read from Redis and reused for a while (a tenant's regions, prompt sets)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Refreshing(Generic[K, V]):
    """Per key: the value loaded at most once every ``max_age_s`` seconds. At most
    ``max_entries`` keys are kept (least recently used dropped first): keys come from requests,
    so a client naming ever new prompt sets must not grow the cache without end."""

    def __init__(
        self, load: Callable[[K], Awaitable[V]], max_age_s: float, *, max_entries: int = 10_000
    ) -> None:
        self._load = load
        self._max_age_s = max_age_s
        self._max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    async def get(self, key: K) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] > self._max_age_s:
            entry = (now, await self._load(key))
            self._entries[key] = entry
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return entry[1]

    def __len__(self) -> int:
        return len(self._entries)
