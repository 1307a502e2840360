"""Decoding of incoming messages, and the dead-letter path every subscriber uses.

A service never crashes on bad input and never drops it silently: a message that cannot be
decoded, or whose processing fails permanently (``PoisonMessage``), is published to the source
topic's ``.dlq`` topic with the original bytes and the reason, and counted.
Transient failures are not dead-lettered: the handler raises, the subscriber (ack policy
``NACK_ON_ERROR``) seeks back, and the message is redelivered (at-least-once).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faststream.kafka import KafkaBroker
from pydantic import TypeAdapter, ValidationError

from shared import events
from shared.metrics import MESSAGES_CONSUMED, MESSAGES_DEAD_LETTERED
from shared.topics import TopicNames, TopicSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


class PoisonMessage(Exception):
    """Processing can never succeed for this message; send it to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a consumed Kafka record the dead-letter path keeps."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @classmethod
    def from_consumer_record(cls, raw: Any) -> Record:
        headers = {
            name: value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            for name, value in (raw.headers or ())
        }
        return cls(raw.topic, raw.partition, raw.offset, raw.key, raw.value or b"", headers)


def records_of(raw_message: Any) -> list[Record]:
    """The records a batch subscriber received: FastStream hands over one ConsumerRecord or a
    tuple of them."""
    raws: Sequence[Any] = raw_message if isinstance(raw_message, tuple) else (raw_message,)
    return [Record.from_consumer_record(raw) for raw in raws]


def decode(adapter: TypeAdapter[T], value: bytes, *, max_bytes: int) -> T:
    """Validate one message body; raise ``PoisonMessage`` with a precise reason."""
    if len(value) > max_bytes:
        raise PoisonMessage("oversized", f"{len(value)} bytes > limit {max_bytes}")
    try:
        data = json.loads(value)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers over Python's digit limit;
        # RecursionError a hostile nesting depth. Neither may escape: the message would be
        # redelivered forever and stall its partition.
        raise PoisonMessage("invalid_json", f"{type(exc).__name__}: {exc}"[:2000]) from exc
    if not isinstance(data, dict):
        raise PoisonMessage("invalid_payload", f"expected a JSON object, got {type(data).__name__}")
    if _SURROGATE_ESCAPE.search(value) and _has_lone_surrogate(data):
        # JSON may escape a lone UTF-16 surrogate; such a string cannot be encoded again (the
        # service's reply or Redis write would fail on every redelivery).
        raise PoisonMessage("invalid_payload", "a string holds a lone UTF-16 surrogate")
    version = data.get("v")
    if version != events.SCHEMA_VERSION:
        raise PoisonMessage("unknown_version", f"schema version {version!r} is not supported")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        reason = "unknown_kind" if _is_unknown_kind(exc) else "invalid_payload"
        raise PoisonMessage(reason, str(exc)) from exc
    except RecursionError as exc:  # deeply nested values inside a known field
        raise PoisonMessage("invalid_payload", "value nested too deeply") from exc


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(data: object) -> bool:
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(data, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_lone_surrogate(item) for item in data)
    return False


def _is_unknown_kind(exc: ValidationError) -> bool:
    return any(
        err["type"] in ("union_tag_invalid", "union_tag_not_found")
        or (err["type"] == "literal_error" and err["loc"] == ("kind",))
        for err in exc.errors()
    )


class DeadLetters:
    """Publishes dead-letter records for one service."""

    def __init__(self, broker: KafkaBroker, topics: TopicNames, service: str) -> None:
        self._broker = broker
        self._topics = topics
        self.service = service

    async def send(self, record: Record, source: TopicSpec, reason: str, error: str) -> None:
        letter = events.DeadLetter(
            service=self.service,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            original=record.value,
            headers=record.headers,
            reason=reason,
            error=error[:8000],
        )
        await self._broker.publish(events.encode(letter), self._topics.dlq(source), key=record.key)
        MESSAGES_DEAD_LETTERED.labels(self.service, source.name, reason).inc()
        log.warning(
            "dead-lettered a message",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason},
        )


class Inbox(Generic[T]):
    """Decodes the messages of one subscribed topic; bad ones go to its dead-letter topic."""

    def __init__(
        self,
        source: TopicSpec,
        adapter: TypeAdapter[T],
        dead_letters: DeadLetters,
        *,
        max_bytes: int,
        authenticate: Callable[[Record], None] | None = None,
    ) -> None:
        """``authenticate`` raises ``PoisonMessage`` for a record that must not be trusted."""
        self.source = source
        self.adapter = adapter
        self.dead_letters = dead_letters
        self.max_bytes = max_bytes
        self.authenticate = authenticate

    async def open(self, record: Record) -> T | None:
        """Decode one record; None when it was dead-lettered."""
        MESSAGES_CONSUMED.labels(self.dead_letters.service, self.source.name).inc()
        try:
            if self.authenticate is not None:
                self.authenticate(record)
            return decode(self.adapter, record.value, max_bytes=self.max_bytes)
        except PoisonMessage as exc:
            await self.dead_letters.send(record, self.source, exc.reason, exc.detail)
        except Exception as exc:  # a decoder bug must not redeliver the message forever
            log.exception("unexpected decoding failure")
            await self.dead_letters.send(record, self.source, "undecodable", repr(exc))
        return None

    async def open_batch(self, raw_message: Any) -> list[tuple[Record, T]]:
        """Decode what a batch subscriber received, keeping each valid event with its record,
        in order."""
        opened: list[tuple[Record, T]] = []
        for record in records_of(raw_message):
            event = await self.open(record)
            if event is not None:
                opened.append((record, event))
        return opened

    async def reject(self, record: Record, exc: PoisonMessage) -> None:
        """Dead-letter a decoded message whose processing failed permanently."""
        await self.dead_letters.send(record, self.source, exc.reason, exc.detail)
