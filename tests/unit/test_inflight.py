"""Committing behind out-of-order completions."""

from __future__ import annotations

from services.generation.inflight import OffsetTracker


def test_commit_waits_for_the_oldest_unfinished_offset() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.start("p0", offset)
    assert tracker.finish("p0", 12) is None  # 10 and 11 still running
    assert tracker.finish("p0", 11) is None
    assert tracker.finish("p0", 10) == 13  # all done: commit past the last
    assert tracker.in_flight() == 0


def test_commit_moves_to_the_first_unfinished() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (0, 1, 2, 3):
        tracker.start("p0", offset)
    assert tracker.finish("p0", 0) == 1
    assert tracker.finish("p0", 2) is None
    assert tracker.finish("p0", 1) == 3
    assert tracker.in_flight() == 1


def test_partitions_are_independent() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("a", 5)
    tracker.start("b", 7)
    assert tracker.finish("b", 7) == 8
    assert tracker.in_flight() == 1
    tracker.forget("a")
    assert tracker.in_flight() == 0
    assert tracker.finish("a", 5) is None  # revoked partition: nothing to commit


def test_redelivered_offsets_are_not_tracked_twice() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p", 1)
    tracker.start("p", 1)
    assert tracker.finish("p", 1) == 2
    assert tracker.in_flight() == 0


def test_an_offset_at_or_below_the_last_tracked_is_a_redelivery() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p", 5)
    tracker.start("p", 6)
    tracker.start("p", 6)  # the last one again
    tracker.start("p", 4)  # an older one
    assert tracker.in_flight() == 2
    tracker.start("p", 7)
    assert tracker.in_flight() == 3


def test_a_commit_never_moves_back_or_repeats() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p", 0)
    assert tracker.finish("p", 0) == 1
    tracker.start("p", 1)
    assert tracker.finish("p", 1) == 2
    tracker.forget("p")
    tracker.start("p", 1)  # after a rebalance the partition comes back at an older offset
    assert tracker.finish("p", 1) == 2  # a fresh state commits again
    tracker.start("p", 2)
    tracker.start("p", 3)
    assert tracker.finish("p", 3) is None
    assert tracker.finish("p", 2) == 4
    assert tracker.finish("p", 2) is None  # finishing twice commits nothing more


def test_an_old_offset_seen_again_after_its_commit_commits_nothing() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (2, 3):
        tracker.start("p", offset)
    tracker.finish("p", 2)
    assert tracker.finish("p", 3) == 4
    tracker.start("p", 2)  # redelivered while nothing is pending
    assert tracker.finish("p", 2) is None  # 3 would move the commit back
    tracker.start("p", 3)
    assert tracker.finish("p", 3) is None  # 4 again: no repeated commit
