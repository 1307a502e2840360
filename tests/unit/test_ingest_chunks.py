"""How ingest splits a batch into embedding chunks: contiguous, in order, never larger than the
chunk size, and a short last chunk (its Redis write is the part of a batch nothing overlaps)."""

from __future__ import annotations

import pytest

from services.ingest.ingestor import chunk_bounds


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 64, 65, 100, 128, 256, 257])
def test_chunks_cover_the_batch_in_order(count: int) -> None:
    bounds = chunk_bounds(count, 64)
    covered = [i for start, end in bounds for i in range(start, end)]
    assert covered == list(range(count))
    assert all(0 < end - start <= 64 for start, end in bounds)


def test_the_last_chunk_is_a_quarter_of_a_chunk() -> None:
    assert chunk_bounds(256, 64) == [(0, 64), (64, 128), (128, 192), (192, 240), (240, 256)]
    assert chunk_bounds(100, 64) == [(0, 64), (64, 84), (84, 100)]


def test_small_batches_are_not_split() -> None:
    """A live edit or a few: one chunk, one embedding call."""
    assert chunk_bounds(1, 64) == [(0, 1)]
    assert chunk_bounds(16, 64) == [(0, 16)]
