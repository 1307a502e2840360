"""Watermarks: which covers which, how they merge, and the one past a consumed batch."""

from __future__ import annotations

from types import SimpleNamespace

from shared.memory.watermark import covers, merged, raw_watermark


def test_a_watermark_covers_another_when_every_partition_is_as_far() -> None:
    assert covers({0: 5, 1: 3}, {0: 5})
    assert covers({0: 5}, {})
    assert not covers({0: 4, 1: 9}, {0: 5})
    assert not covers({0: 5}, {1: 1})  # a partition not applied at all
    assert covers({}, {1: 0})


def test_merged_keeps_the_furthest_offset_of_each_partition() -> None:
    assert merged({0: 5, 1: 2}, {0: 3, 2: 7}, {}) == {0: 5, 1: 2, 2: 7}
    assert merged() == {}


def test_the_watermark_past_a_batch_is_one_past_its_last_record_per_partition() -> None:
    batch = [SimpleNamespace(partition=p, offset=o) for p, o in ((0, 4), (1, 9), (0, 7), (0, 5))]
    assert raw_watermark(batch) == {0: 8, 1: 10}
    assert raw_watermark(SimpleNamespace(partition=2, offset=0)) == {2: 1}
