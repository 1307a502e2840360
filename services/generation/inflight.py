"""Many requests in flight, offsets committed only behind finished work (at-least-once).

Messages of a partition finish out of order. ``OffsetTracker`` says which offset may be
committed: the first offset that is not finished yet (or one past the last, when all are). A crash
then redelivers every unfinished message and nothing after it is lost; finished messages after an
unfinished one may be redelivered too and answered twice (clients de-duplicate by request id).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")  # a partition identifier


@dataclass
class _Partition:
    pending: deque[int] = field(default_factory=deque)
    """Started offsets, ascending, not yet removed."""
    finished: set[int] = field(default_factory=set)
    committed: int | None = None


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

    def start(self, partition: P, offset: int) -> None:
        state = self._partitions.setdefault(partition, _Partition())
        if state.pending and offset <= state.pending[-1]:
            return  # a redelivery of something already tracked
        state.pending.append(offset)

    def finish(self, partition: P, offset: int) -> int | None:
        """Mark an offset done; return the new offset to commit when it moved forward."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        state.finished.add(offset)
        last = None
        while state.pending and state.pending[0] in state.finished:
            last = state.pending.popleft()
            state.finished.discard(last)
        if last is None:
            return None
        commit = state.pending[0] if state.pending else last + 1
        if state.committed is not None and commit <= state.committed:
            return None
        state.committed = commit
        return commit

    def in_flight(self) -> int:
        return sum(len(s.pending) for s in self._partitions.values())

    def forget(self, partition: P) -> None:
        """The partition was revoked: its offsets are another consumer's now."""
        self._partitions.pop(partition, None)
