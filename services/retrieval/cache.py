"""Values read from Redis and reused for a while (a tenant's regions, prompt sets)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class Refreshing(Generic[V]):
    """Per key: the value loaded at most once every ``max_age_s`` seconds."""

    def __init__(self, load: Callable[[str], Awaitable[V]], max_age_s: float) -> None:
        self._load = load
        self._max_age_s = max_age_s
        self._entries: dict[str, tuple[float, V]] = {}

    async def get(self, key: str) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] > self._max_age_s:
            entry = (now, await self._load(key))
            self._entries[key] = entry
        return entry[1]
