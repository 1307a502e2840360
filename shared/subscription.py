"""The consumer side of a service: what it subscribes to (``Subscription``: the topic, what its
records decode to, how they are fetched and acked) and what its handler is given (``Batch``: one
fetched batch, already decoded).

``Service.subscribe`` opens every record through the subscription's inbox before the handler
runs (decoding, authentication, checks; what fails is dead-lettered with its reason), so a
handler sees only valid events, each with its record. A subscription that commits by hand
behind finished work (generation) takes the records undecoded and opens them one by one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faststream import AckPolicy
from pydantic import TypeAdapter

from shared.dlq import Check, Record, read_record
from shared.topics import TopicSpec

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    records: list[Record]
    """Every record fetched, in order (dead-lettered ones included: they are done with)."""
    opened: list[tuple[Record, T]]
    """Each valid event with its record, in order (empty when the subscription decodes none)."""
    consumer: Any
    """The consumer that fetched it (aiokafka's; a handler that commits by hand uses it)."""

    @property
    def events(self) -> list[T]:
        return [event for _, event in self.opened]


@dataclass(frozen=True, slots=True)
class Subscription(Generic[T]):
    """One consumed topic: what its records decode to and how they are fetched and acked."""

    topic: TopicSpec
    adapter: TypeAdapter[T]
    max_records: int
    batch_timeout_ms: int | None = None
    """How long a fetch waits to fill a batch; None: FastStream's default."""
    ack_policy: AckPolicy = AckPolicy.NACK_ON_ERROR
    """``MANUAL``: the handler commits offsets itself (generation, behind finished work)."""
    authenticate: Callable[[Record], None] | None = None
    checks: tuple[Check[T], ...] = ()
    group_id: str | None = None
    """The consumer group; None: the service's (``group_id`` setting). A topic only one
    instance reads (a gateway's replies) takes a group of that instance alone."""
    pause_on_drain: bool = True
    """Stop fetching when the service starts draining (inputs: the work in flight finishes,
    no new work is taken). False for what the drain itself waits on (a gateway's replies)."""
    chat_path: bool = False
    """A hop every answer waits for: fetched with ``chat_fetch_max_wait_ms``."""
    decoded: bool = True
    """False: the handler opens the records itself, one by one (``Batch.opened`` is empty)."""
    on_revoked: Callable[[set[Any]], Awaitable[Any]] | None = None
    """Runs when the group takes partitions away, before it hands them to another member (the
    rebalance waits for it: generation finishes or aborts the work of those partitions)."""
    on_assigned: Callable[[set[Any]], None] | None = None
    """Runs when the group hands this member partitions (again)."""

    def read(self, record: Record, *, max_bytes: int) -> T:
        """A record's message after every check the subscriber applies; ``PoisonMessage``
        when it would be dead-lettered (e.g. a rebuild reads the rule log this way)."""
        return read_record(record, self.adapter, max_bytes=max_bytes,
                           authenticate=self.authenticate, checks=self.checks)  # fmt: skip
