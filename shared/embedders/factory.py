"""The embedders by name (``ALIGNSTREAM_EMBEDDER_BACKEND``).

Adding an embedder: a class with the ``Embedder`` methods in this folder, its fields in
``EmbedderSettings``, and a line here (and in the settings' ``backend`` Literal). The index
definition carries the embedder's name and dimension: after switching, re-embed the rules with
``alignstream memory rebuild --drop``.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.embedders.base import Embedder, EmbedderSettings
from shared.embedders.openai_compat import OpenAIEmbedder
from shared.embedders.use import UniversalSentenceEncoder
from shared.embedders.worker import WorkerProcessEmbedder


def _use(settings: EmbedderSettings) -> Embedder:
    local = WorkerProcessEmbedder if settings.worker_process else UniversalSentenceEncoder
    return local(threads=settings.threads, batch_size=settings.batch_size)


EMBEDDERS: dict[str, Callable[[EmbedderSettings], Embedder]] = {
    "use": _use,
    "openai": OpenAIEmbedder,
}


def make_embedder(settings: EmbedderSettings) -> Embedder:
    return EMBEDDERS[settings.backend](settings)
