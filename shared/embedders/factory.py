"""Build the configured embedder."""

from __future__ import annotations

from shared.embedders.base import Embedder, EmbedderSettings
from shared.embedders.openai_compat import OpenAIEmbedder
from shared.embedders.use import UniversalSentenceEncoder


def make_embedder(settings: EmbedderSettings) -> Embedder:
    if settings.backend == "openai":
        return OpenAIEmbedder(settings)
    return UniversalSentenceEncoder(threads=settings.threads, batch_size=settings.batch_size)
