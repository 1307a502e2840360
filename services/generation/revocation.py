"""What generation does with the requests in flight of partitions the group takes away.

aiokafka rebalances eagerly: every rebalance revokes every partition of every member, and the
group waits for each member's revocation callback before it assigns any again. Without this
module, the requests of a revoked partition kept generating and answered, their offsets were not
committed, and the partition's next owner answered them again (a duplicate generation each).

On revocation each request of a revoked partition is either *finished* (answered, its offset
committed before the callback returns) or *aborted* before it answers and left to the next
owner, which may be this instance again. Never both: a request publishes its answer only while
its partition is held (``may_deliver``, checked and marked in one step, with no await between),
and the callback waits for every request that passed that check.

By phase: a request still waiting for a slot is aborted at once (nothing generated yet); one
generating gets ``grace_s`` to finish; one delivering is awaited (its publish is retried through
an outage, so that wait is bounded by ``delivery_bound_s`` and counted when it runs out).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

P = TypeVar("P")  # a partition identifier

REVOKED = Counter(
    "alignstream_generation_revoked_requests_total",
    "Requests in flight when their partition was revoked, by outcome: finished here (answered "
    "and committed), aborted (left to the next owner), unsettled (still delivering when the "
    "bound ran out: it may be answered twice).",
    ["outcome"],
)
REVOCATION_SECONDS = Histogram(
    "alignstream_generation_revocation_seconds",
    "How long a revocation held the rebalance (the group waits for it).",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class Phase(enum.Enum):
    QUEUED = "queued"
    GENERATING = "generating"
    DELIVERING = "delivering"


@dataclass(slots=True)
class _Request(Generic[P]):
    partition: P
    phase: Phase = Phase.QUEUED


@dataclass(frozen=True, slots=True)
class Revocation:
    finished: int
    aborted: int
    unsettled: int
    seconds: float


@dataclass(slots=True)
class PartitionWork(Generic[P]):
    grace_s: float
    """How long a generating request of a revoked partition may take to finish."""
    delivery_bound_s: float
    """How long a revocation waits for answers being published."""
    settle: Callable[[set[P]], Awaitable[None]]
    """Commits what finished on the revoked partitions and forgets them (the committer)."""
    _requests: dict[asyncio.Task[None], _Request[P]] = field(default_factory=dict)
    _closing: set[P] = field(default_factory=set)
    """Revoked (or being revoked): no new request of theirs starts."""
    _revoked: set[P] = field(default_factory=set)
    """Revoked, grace over: no request of theirs answers."""

    def accepts(self, partition: P) -> bool:
        """Whether a record of ``partition`` may start a request (False once it is revoked,
        until it is assigned again: its next owner reads it from the committed offset)."""
        return partition not in self._closing

    def track(self, partition: P, task: asyncio.Task[None]) -> None:
        self._requests[task] = _Request(partition)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Task[None]) -> None:
        self._requests.pop(task, None)

    def may_generate(self) -> bool:
        """The current request got its slot: True to generate, False when its partition was
        revoked meanwhile (abort: the next owner answers it)."""
        return self._advance(Phase.GENERATING, unless_in=self._closing)

    def may_deliver(self) -> bool:
        """The current request has its answer: True to publish it (it then counts as
        delivering and a revocation waits for it), False when its partition was revoked and the
        grace ran out (abort)."""
        return self._advance(Phase.DELIVERING, unless_in=self._revoked)

    def _advance(self, phase: Phase, *, unless_in: set[P]) -> bool:
        """Move the current request (the calling task's) to ``phase`` unless its partition is
        in ``unless_in``; checked and marked with no await between (no revocation can slip in)."""
        task = asyncio.current_task()
        request = self._requests.get(task) if task is not None else None
        if request is None:  # not a tracked request (tests, direct calls): nothing to guard
            return True
        if request.partition in unless_in:
            return False
        request.phase = phase
        return True

    def assigned(self, partitions: Iterable[P]) -> None:
        held = set(partitions)
        self._closing -= held
        self._revoked -= held

    async def revoke(self, partitions: Iterable[P]) -> Revocation:
        """Finish or abort every request of ``partitions``; returns once each is settled and
        what finished is committed."""
        started = time.perf_counter()
        gone = set(partitions)
        self._closing |= gone
        mine = {task: r for task, r in self._requests.items() if r.partition in gone}
        queued = [task for task, r in mine.items() if r.phase is Phase.QUEUED]
        for task in queued:
            task.cancel()
        running = [task for task in mine if task not in queued]
        if running:
            await asyncio.wait(running, timeout=self.grace_s)
        self._revoked |= gone
        late = [task for task in running if not task.done()]
        for task in late:
            if mine[task].phase is Phase.GENERATING:
                task.cancel()
        late += [task for task in queued if not task.done()]  # their cancellation lands
        unsettled = 0
        if late:
            _, pending = await asyncio.wait(late, timeout=self.delivery_bound_s)
            unsettled = len(pending)
        await self.settle(gone)
        # Delivering means answered (or being answered): every other request was aborted.
        finished = sum(1 for t, r in mine.items() if r.phase is Phase.DELIVERING and t.done())
        aborted = len(mine) - finished - unsettled
        seconds = time.perf_counter() - started
        outcome = Revocation(finished, aborted, unsettled, seconds)
        for name in ("finished", "aborted", "unsettled"):
            REVOKED.labels(name).inc(getattr(outcome, name))
        REVOCATION_SECONDS.observe(outcome.seconds)
        if mine:
            log.info("partitions revoked", extra={"partitions": [str(p) for p in gone],
                     "finished": outcome.finished, "aborted": outcome.aborted,
                     "unsettled": unsettled, "seconds": round(outcome.seconds, 3)})  # fmt: skip
        return outcome
