"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported when the fixture is used: loading it costs ~2 s per test run
    from shared.embedders.use import UniversalSentenceEncoder


@pytest.fixture(scope="session")
def use_embedder() -> UniversalSentenceEncoder:
    """The real offline embedder, loaded once (~1 s)."""
    from shared.embedders.use import UniversalSentenceEncoder

    embedder = UniversalSentenceEncoder()
    embedder.embed_sync(["load"])
    return embedder
