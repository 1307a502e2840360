"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pytest

from shared.embedders.use import UniversalSentenceEncoder


@pytest.fixture(scope="session")
def use_embedder() -> UniversalSentenceEncoder:
    """The real offline embedder, loaded once (~1 s)."""
    embedder = UniversalSentenceEncoder()
    embedder.embed_sync(["load"])
    return embedder
