"""An embedder of a known speed: a real one made slower, so that a test can build a backlog
(a bulk load that takes seconds) without thousands of rules."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from shared.embedders import Embedder
from shared.embedders.base import Vectors


class PacedEmbedder:
    """``inner``'s vectors, each call taking at least ``seconds_per_text`` per text; one call
    at a time, as a local model runs (a call waits for the one in progress)."""

    def __init__(self, inner: Embedder, seconds_per_text: float) -> None:
        self.inner = inner
        self.seconds_per_text = seconds_per_text
        self.calls: list[int] = []
        """The number of texts of each call, in order."""
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    async def start(self) -> None:
        await self.inner.start()

    async def embed(self, texts: Sequence[str]) -> Vectors:
        async with self._lock:
            self.calls.append(len(texts))
            pace = asyncio.sleep(self.seconds_per_text * len(texts))
            vectors, _ = await asyncio.gather(self.inner.embed(texts), pace)
            return vectors

    async def close(self) -> None:
        await self.inner.close()


class CountingEmbedder:
    """Zero vectors of ``dim``; counts its starts, so a test can tell whether a command
    loaded its model (and when)."""

    name = "counting"

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return np.zeros((len(texts), self.dim), dtype=np.float32)

    async def close(self) -> None:
        pass
