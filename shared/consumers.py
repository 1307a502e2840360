"""The subscribers a service reads its inputs with: paused when draining starts (no new work
is taken while the work in flight finishes), and watched by the liveness probe (a consume loop
that ended while the service runs leaves a pod that looks up and does nothing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener


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
    """Keeps a draining consumer paused across a rebalance: a rolling update starts the new
    pod while the old one drains, and the partitions the group then hands the old one would
    otherwise be fetched from again."""

    inputs: InputConsumers
    watched: list[_Watched] = field(default_factory=list)
    revoked_hook: Callable[[set[Any]], Awaitable[Any]] | None = None
    assigned_hook: Callable[[set[Any]], None] | None = None

    # Coroutines: FastStream runs a plain listener method in a worker thread, where aiokafka
    # cannot pause (it needs the event loop).
    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.revoked_hook is not None and revoked:
            await self.revoked_hook(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.assigned_hook is not None and assigned:
            self.assigned_hook(set(assigned))
        if self.inputs.draining and assigned:
            for watched in self.watched:
                watched.pause(assigned)


class InputConsumers:
    def __init__(self) -> None:
        self._watched: list[_Watched] = []
        self.draining = False

    def listener(
        self,
        *,
        on_revoked: Callable[[set[Any]], Awaitable[Any]] | None = None,
        on_assigned: Callable[[set[Any]], None] | None = None,
    ) -> DrainListener:
        """The rebalance listener of the next subscriber ``add`` registers (with the
        subscription's own rebalance hooks)."""
        return DrainListener(self, revoked_hook=on_revoked, assigned_hook=on_assigned)

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
