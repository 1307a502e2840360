"""The embedder interface and its settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.openai_endpoint import OpenAIEndpoint

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model; part of the index fingerprint (vectors of different models
        must not share an index)."""
        ...

    @property
    def dim(self) -> int: ...

    async def start(self) -> None:
        """Load the model or probe the endpoint (and learn the dimension)."""
        ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), dim), rows normalized to unit length."""
        ...

    async def close(self) -> None: ...


def normalize(vectors: npt.NDArray[np.floating]) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    normalized: Vectors = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return normalized


class EmbedderSettings(OpenAIEndpoint):
    """The embedder (``ALIGNSTREAM_EMBEDDER_``): the offline USE model, or an OpenAI-compatible
    ``/v1/embeddings`` endpoint (``base_url``, ``model``, ``api_key``, ``timeout_s``)."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_EMBEDDER_", extra="ignore")

    backend: Literal["use", "openai"] = "use"
    """``use``: the offline multilingual Universal Sentence Encoder (512-dim, in the wheel);
    ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM pooling, TEI, OpenAI)."""
    model: str = "text-embedding-3-small"
    """Model name sent to the OpenAI-compatible endpoint."""
    dimensions: int | None = Field(default=None, ge=1)
    """Ask the endpoint for this many dimensions (models that support it)."""
    batch_size: int = Field(default=64, ge=1)
    """Largest number of texts sent in one call."""
    threads: int | None = Field(default=None, ge=1)
    """BLAS threads of the local model; None: numpy's default (all cores). On small machines
    shared with Redis and Kafka, 1 leaves them a core."""
    worker_process: bool = True
    """Run the local model in a worker process of its own, so that its Python work and the
    service's event loop do not take turns on one GIL (``shared/embedders/worker.py``)."""
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
