"""Offsets committed behind finished work only: the generation consumer commits by hand."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from services.generation.inflight import OffsetTracker
from shared.consumers import Commits

log = logging.getLogger(__name__)


class OrderedCommitter:
    """Records each consumed offset and commits, per partition, up to the first one not
    finished (``OffsetTracker``); a failed commit (the partition was rebalanced away) forgets
    the partition: its new owner redelivers what was not committed.

    One commit is in flight at a time: what finishes meanwhile is committed together by the next
    one (requests of a batch finish together; a round trip each would cost the broker and this
    process a commit per answer). A caller whose offset is left to the commit in flight returns
    at once: that commit's owner commits it before it returns."""

    def __init__(self) -> None:
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._consumer: Commits | None = None
        self._due: dict[TopicPartition, int] = {}
        self._committing = asyncio.Lock()

    def consumed(self, consumer: Commits, partition: TopicPartition, offset: int) -> None:
        self._consumer = consumer
        self._offsets.start(partition, offset)

    async def finished(self, partition: TopicPartition, offset: int) -> None:
        commit = self._offsets.finish(partition, offset)
        if commit is None or self._consumer is None:
            return
        self._due[partition] = commit
        if self._committing.locked():
            return  # the commit in flight takes it next
        async with self._committing:
            await self._commit_due()

    async def settle(self, partitions: set[TopicPartition]) -> None:
        """Commit everything finished, then forget ``partitions``: they are being revoked, and
        their next owner starts from what is committed now."""
        async with self._committing:
            await self._commit_due()
        for revoked in partitions:
            self._offsets.forget(revoked)

    async def _commit_due(self) -> None:
        while self._due and self._consumer is not None:
            due, self._due = self._due, {}
            try:
                await self._consumer.commit(due)
            except Exception:  # rebalanced away: the new owner redelivers
                log.warning("offset commit failed", extra={"partitions": [str(p) for p in due]})
                for revoked in due:
                    self._offsets.forget(revoked)
