"""The default embedder is real, offline and multilingual."""

from __future__ import annotations

import numpy as np

from shared.embedders import EmbedderSettings, make_embedder
from shared.embedders.openai_compat import OpenAIEmbedder
from shared.embedders.use import UniversalSentenceEncoder
from shared.embedders.worker import WorkerProcessEmbedder


async def test_use_vectors_are_normalized_and_cross_lingual(
    use_embedder: UniversalSentenceEncoder,
) -> None:
    vectors = await use_embedder.embed(
        ["公民的合法的私有财产不受侵犯。", "Citizens' lawful private property is inviolable.",
         "The weather is sunny today."]
    )  # fmt: skip
    assert vectors.shape == (3, use_embedder.dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


async def test_empty_input(use_embedder: UniversalSentenceEncoder) -> None:
    assert (await use_embedder.embed([])).shape == (0, use_embedder.dim)


def test_factory_picks_the_backend() -> None:
    assert isinstance(make_embedder(EmbedderSettings()), WorkerProcessEmbedder)
    in_process = make_embedder(EmbedderSettings(worker_process=False))
    assert isinstance(in_process, UniversalSentenceEncoder)
    remote = make_embedder(EmbedderSettings(backend="openai", base_url="http://127.0.0.1:1/v1"))
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.name == "openai:text-embedding-3-small"
