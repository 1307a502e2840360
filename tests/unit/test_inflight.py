"""Committing behind out-of-order completions, one commit in flight at a time."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from services.generation.committer import OrderedCommitter
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


class SlowCommits:
    """A consumer whose commit takes a broker round trip; records what each commit carried."""

    def __init__(self, fail: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail = fail

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("rebalanced away")


async def test_finishes_during_a_commit_are_committed_together_by_the_next() -> None:
    consumer, committer = SlowCommits(), OrderedCommitter()
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    for offset in range(5):
        committer.consumed(consumer, p0, offset)
    committer.consumed(consumer, p1, 7)
    finishing = [committer.finished(p0, o) for o in range(5)] + [committer.finished(p1, 7)]
    await asyncio.gather(*finishing)
    # The first finish commits at once; the five that finished during it, in one more commit.
    assert consumer.commits == [{p0: 1}, {p0: 5, p1: 8}]


async def test_a_failed_commit_forgets_its_partitions() -> None:
    consumer, committer = SlowCommits(fail=True), OrderedCommitter()
    p0 = TopicPartition("t", 0)
    committer.consumed(consumer, p0, 0)
    committer.consumed(consumer, p0, 1)
    await committer.finished(p0, 0)
    await committer.finished(p0, 1)  # the partition is another consumer's now
    assert consumer.commits == [{p0: 1}]
