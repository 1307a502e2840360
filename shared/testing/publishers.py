"""A publisher that keeps what it is given: the ``Publisher`` contract of ``shared/service.py``
without a broker (for the cores that publish: schedulers, runners)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from shared.events import Event, encode
from shared.kafka import OversizedMessage
from shared.service import Key
from shared.topics import TopicNames


class RecordingPublisher:
    def __init__(self, name: str = "test", max_message_bytes: int = 1_000_000) -> None:
        self.name = name
        self.topics = TopicNames()
        self.max_message_bytes = max_message_bytes
        self.published: defaultdict[str, list[Event]] = defaultdict(list)
        self.bodies: defaultdict[str, list[tuple[Key, bytes]]] = defaultdict(list)

    def encode_bounded(self, event: Event) -> bytes:
        body = encode(event)
        if len(body) > self.max_message_bytes:
            raise OversizedMessage(len(body), self.max_message_bytes)
        return body

    async def publish_all(self, topic: str, outgoing: Iterable[Event]) -> None:
        for event in outgoing:
            self.encode_bounded(event)
            self.published[topic].append(event)

    async def publish_bodies(
        self,
        topic: str,
        bodies: Iterable[tuple[Key, bytes]],
        *,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        self.bodies[topic].extend(bodies)
