"""Which requests their clients gave up on: the work of each is cancelled (queued for a slot or
generating: the engine aborts the request and the slot is freed), and a cancel that arrives
before its request does is remembered for a while, so the request is answered ``cancelled``
without generating when it comes."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter

from shared import events

CANCELLED = Counter(
    "alignstream_generation_cancelled_total",
    "Requests cancelled by their client, by where the cancel found them.",
    ["stage"],
)

Slot = tuple[str, str]
"""(tenant, request id)."""


class Cancellations:
    def __init__(self, *, remember: int = 10_000, remember_s: float = 600.0) -> None:
        self._running: dict[Slot, asyncio.Task[None]] = {}
        self._early: OrderedDict[Slot, float] = OrderedDict()
        self._requested: set[Slot] = set()
        self.remember, self.remember_s = remember, remember_s

    @contextmanager
    def tracking(self, request: events.ChatRequest) -> Iterator[None]:
        """Run the current task's work on ``request`` as cancellable by its client."""
        slot = (request.tenant, request.request_id)
        task = asyncio.current_task()
        assert task is not None
        self._running[slot] = task
        try:
            yield
        finally:
            if self._running.get(slot) is task:
                del self._running[slot]
            self._requested.discard(slot)

    def cancel(self, cancel: events.ChatCancel) -> None:
        slot = (cancel.tenant, cancel.request_id)
        task = self._running.get(slot)
        if task is not None:
            CANCELLED.labels("running").inc()
            self._requested.add(slot)
            task.cancel()
            return
        self._early[slot] = time.monotonic()
        self._early.move_to_end(slot)
        while len(self._early) > self.remember:  # cancels come from clients: bounded
            self._early.popitem(last=False)

    def was_cancelled(self, request: events.ChatRequest) -> bool:
        """Whether the client cancelled ``request`` before it arrived (forgets the cancel)."""
        slot = (request.tenant, request.request_id)
        at = self._early.pop(slot, None)
        if at is None or time.monotonic() - at > self.remember_s:
            return False
        CANCELLED.labels("before_arrival").inc()
        return True

    def requested(self, request: events.ChatRequest) -> bool:
        """Whether a ``CancelledError`` in the work on ``request`` came from its client."""
        return (request.tenant, request.request_id) in self._requested
