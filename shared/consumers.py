"""The subscribers a service reads its inputs with: paused when draining starts (no new work
is taken while the work in flight finishes), and watched by the liveness probe (a consume loop
that ended while the service runs leaves a pod that looks up and does nothing)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

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


class InputConsumers:
    def __init__(self) -> None:
        self._watched: list[_Watched] = []

    def add(self, subscriber: Any, name: str, *, pause_on_drain: bool) -> None:
        self._watched.append(_Watched(subscriber, name, pause_on_drain))

    def pause(self) -> int:
        """Stop fetching on every partition of the subscribers that pause on drain; the number
        of partitions paused. Records not fetched stay uncommitted: the group's next member
        (after this one leaves) reads them."""
        paused = 0
        for watched in self._watched:
            consumer: Pausable | None = getattr(watched.subscriber, "consumer", None)
            if not watched.pause_on_drain or consumer is None:
                continue
            assigned = consumer.assignment()
            if assigned:
                consumer.pause(*assigned)
                paused += len(assigned)
        return paused

    def stopped(self) -> list[str]:
        """The subscribers whose consume loop ended although they should be running."""
        dead = []
        for watched in self._watched:
            subscriber = watched.subscriber
            tasks = getattr(subscriber, "tasks", [])
            if getattr(subscriber, "running", False) and tasks and all(t.done() for t in tasks):
                dead.append(watched.name)
        return dead
