"""Any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM pooling runner, TEI, OpenAI)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from openai import omit

from shared.embedders.base import EmbedderSettings, Vectors, normalize


class OpenAIEmbedder:
    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        self.name = f"openai:{settings.model}"
        self._dim: int | None = settings.dimensions
        self._client = settings.client()

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError("dimension unknown until start() probed the endpoint")
        return self._dim

    async def start(self) -> None:
        if self._dim is None:
            self._dim = int((await self._call(["dimension probe"])).shape[1])

    async def _call(self, texts: Sequence[str]) -> Vectors:
        response = await self._client.embeddings.create(
            model=self.settings.model,
            input=list(texts),
            encoding_format="float",
            dimensions=self.settings.dimensions or omit,
        )
        rows = sorted(response.data, key=lambda item: item.index)
        return normalize(np.array([row.embedding for row in rows], dtype=np.float32))

    async def embed(self, texts: Sequence[str]) -> Vectors:
        await self.start()
        size = self.settings.batch_size
        parts = await asyncio.gather(
            *(self._call(texts[i : i + size]) for i in range(0, len(texts), size))
        )
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    async def close(self) -> None:
        await self._client.close()
