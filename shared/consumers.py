"""The subscribers a service reads its inputs with: paused when draining starts (no new work
is taken while the work in flight finishes), and watched by the liveness probe (a consume loop
that ended while the service runs leaves a pod that looks up and does nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from shared.dlq import Record

log = logging.getLogger(__name__)


class Pausable(Protocol):
    """The part of aiokafka's consumer this module uses."""

    def assignment(self) -> set[Any]: ...

    def pause(self, *partitions: Any) -> None: ...


@dataclass(slots=True)
class _Watched:
    subscriber: Any  # FastStream's KafkaSubscriber: ``consumer``, ``running``, ``tasks``
    name: str
    pause_on_drain: bool

    def pause(self, partitions: Any = None) -> int:
        """Pause ``partitions`` (None: all assigned) when this subscriber pauses on drain and
        its consumer runs; how many were paused."""
        consumer: Pausable | None = getattr(self.subscriber, "consumer", None)
        if not self.pause_on_drain or consumer is None:
            return 0
        chosen = consumer.assignment() if partitions is None else partitions
        if chosen:
            consumer.pause(*chosen)
        return len(chosen)


@dataclass(slots=True)
class DrainListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """One subscriber's rebalance listener.

    On revocation, before the group hands the partitions to another member: a subscription with
    a hook of its own runs it (generation: finish or abort the work of those partitions); any
    other waits up to ``settle_s`` for the batch its handler is working on and commits what the
    handler finished, so the next owner starts after it (FastStream commits only after the
    handler returns, by then for a generation the group no longer has: the next owner would do
    that batch again). Only offsets of handled batches are committed, never a fetched position.

    On assignment: keeps a draining consumer paused across a rebalance (a rolling update starts
    the new pod while the old one drains, and the partitions the group then hands the old one
    would otherwise be fetched from again)."""

    inputs: InputConsumers
    watched: list[_Watched] = field(default_factory=list)
    revoked_hook: Callable[[set[Any]], Awaitable[Any]] | None = None
    assigned_hook: Callable[[set[Any]], None] | None = None
    settle_s: float = 10.0
    _busy: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _handled: dict[Any, int] = field(default_factory=dict)
    """Per partition, one past the last offset a handler finished (not committed yet)."""

    @contextlib.contextmanager
    def handling(self, records: Sequence[Record]) -> Iterator[None]:
        """Around one batch's handler: a revocation waits for it; once it returned, its offsets
        are the ones a revocation commits."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
            for record in records:
                partition = TopicPartition(record.topic, record.partition or 0)
                offset = (record.offset or 0) + 1
                self._handled[partition] = max(offset, self._handled.get(partition, 0))
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    # Coroutines: FastStream runs a plain listener method in a worker thread, where aiokafka
    # cannot pause (it needs the event loop).
    async def on_partitions_revoked(self, revoked: Any) -> None:
        if not revoked:
            return
        if self.revoked_hook is not None:
            await self.revoked_hook(set(revoked))
            return
        if self._busy:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=self.settle_s)
            except TimeoutError:  # left uncommitted: the next owner handles the batch again
                log.warning("a batch still running at revocation", extra={"after_s": self.settle_s})
        due = {p: self._handled.pop(p) for p in set(revoked) if p in self._handled}
        consumer: Commits | None = next(
            (getattr(w.subscriber, "consumer", None) for w in self.watched), None
        )
        if due and consumer is not None:
            try:
                await consumer.commit(due)
            except Exception:  # the group moved on already: the next owner redoes the batch
                log.warning("commit at revocation failed", exc_info=True)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.assigned_hook is not None and assigned:
            self.assigned_hook(set(assigned))
        if self.inputs.draining and assigned:
            for watched in self.watched:
                watched.pause(assigned)


class Commits(Protocol):
    """The part of a Kafka consumer that commits explicit offsets (aiokafka's)."""

    async def commit(self, offsets: dict[Any, int]) -> None: ...


class InputConsumers:
    def __init__(self) -> None:
        self._watched: list[_Watched] = []
        self.draining = False

    def listener(
        self,
        *,
        on_revoked: Callable[[set[Any]], Awaitable[Any]] | None = None,
        on_assigned: Callable[[set[Any]], None] | None = None,
        settle_s: float = 10.0,
    ) -> DrainListener:
        """The rebalance listener of the next subscriber ``add`` registers (with the
        subscription's own rebalance hooks)."""
        return DrainListener(self, revoked_hook=on_revoked, assigned_hook=on_assigned,
                             settle_s=settle_s)  # fmt: skip

    def add(
        self,
        subscriber: Any,
        name: str,
        *,
        pause_on_drain: bool,
        listener: DrainListener | None = None,
    ) -> None:
        watched = _Watched(subscriber, name, pause_on_drain)
        self._watched.append(watched)
        if listener is not None:
            listener.watched.append(watched)

    def names(self) -> set[str]:
        """The topics consumed (by their names in ``shared/topics.py``)."""
        return {watched.name for watched in self._watched}

    def pause(self) -> int:
        """Stop fetching on every partition of the subscribers that pause on drain (and on
        those a rebalance assigns later); the number of partitions paused. Records not fetched
        stay uncommitted: the group's other members read them."""
        self.draining = True
        return sum(watched.pause() for watched in self._watched)

    def stopped(self) -> list[str]:
        """The subscribers whose consume loop ended although they should be running."""
        dead = []
        for watched in self._watched:
            subscriber = watched.subscriber
            tasks = getattr(subscriber, "tasks", [])
            if getattr(subscriber, "running", False) and tasks and all(t.done() for t in tasks):
                dead.append(watched.name)
        return dead
