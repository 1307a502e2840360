"""Offsets committed behind finished work only: the generation consumer commits by hand."""

from __future__ import annotations

import logging
from typing import Protocol

from aiokafka import TopicPartition

from services.generation.inflight import OffsetTracker

log = logging.getLogger(__name__)


class Commits(Protocol):
    """The part of a Kafka consumer the committer uses."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class OrderedCommitter:
    """Records each consumed offset and commits, per partition, up to the first one not
    finished (``OffsetTracker``); a failed commit (the partition was rebalanced away) forgets
    the partition: its new owner redelivers what was not committed."""

    def __init__(self) -> None:
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._consumer: Commits | None = None

    def consumed(self, consumer: Commits, partition: TopicPartition, offset: int) -> None:
        self._consumer = consumer
        self._offsets.start(partition, offset)

    async def finished(self, partition: TopicPartition, offset: int) -> None:
        commit = self._offsets.finish(partition, offset)
        if commit is None or self._consumer is None:
            return
        try:
            await self._consumer.commit({partition: commit})
        except Exception:  # rebalanced away: the new owner redelivers
            log.warning("offset commit failed", extra={"partition": str(partition)})
            self._offsets.forget(partition)
