"""Text embedders behind one interface; the dimension comes from the embedder."""

from shared.embedders.base import Embedder, EmbedderSettings
from shared.embedders.factory import make_embedder

__all__ = ["Embedder", "EmbedderSettings", "make_embedder"]
