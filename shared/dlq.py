"""Decoding of incoming messages, and the dead-letter path every subscriber uses.

A service never crashes on bad input and never drops it silently: a message that cannot be
decoded, or whose processing fails permanently (``PoisonMessage``), is published to the source
topic's ``.dlq`` topic with the reason, and counted. A dead letter is bounded: it keeps a prefix
of the original bytes with their size and hash (a letter carrying a whole oversized message
would itself be too large to publish, and the consumer would loop on it for ever).
Transient failures are not dead-lettered: the handler raises, the subscriber (ack policy
``NACK_ON_ERROR``) seeks back, and the message is redelivered (at-least-once). A failure to
publish a dead letter is such a failure: it is counted and backs off before the redelivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faststream.kafka import KafkaBroker
from pydantic import TypeAdapter, ValidationError

from shared import events
from shared.metrics import DEAD_LETTER_FAILURES, MESSAGES_CONSUMED, MESSAGES_DEAD_LETTERED
from shared.topics import TopicNames, TopicSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_HEADERS = 32
"""Headers kept on a dead letter (the rest are dropped; hostile records may carry thousands)."""
MAX_HEADER_CHARS = 1024
"""Longest header name or value kept on a dead letter."""
MAX_KEY_BYTES = 1024
"""Longest record key kept on a dead letter."""
MAX_ERROR_CHARS = 8000


class PoisonMessage(Exception):
    """Processing can never succeed for this message; send it to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
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
    """The message's own ``kind`` is not one the topic takes. A bad tag of a union nested in
    the payload (e.g. a research job's ``spec.method``) is an invalid payload instead."""
    return any(
        (err["type"] in ("union_tag_invalid", "union_tag_not_found") and err["loc"] == ())
        or (err["type"] == "literal_error" and err["loc"] == ("kind",))
        for err in exc.errors()
    )


def backoff_after(failures: int, base_s: float, max_s: float = 30.0) -> float:
    """The pause after ``failures`` consecutive failures: none before the first, then
    ``base_s`` doubling up to ``max_s``."""
    if failures <= 0:
        return 0.0
    pause: float = base_s * 2.0 ** (failures - 1)
    return min(pause, max_s)


class DeadLetterFailed(Exception):
    """A dead letter could not be published; the message is redelivered after a back-off."""


def bounded_letter(
    record: Record, *, service: str, reason: str, error: str, original_bytes: int
) -> events.DeadLetter:
    """The dead letter of a record, every part bounded: a prefix of ``original_bytes`` of the
    body (with its full size and SHA-256), of the key, of the headers and of the error."""
    headers: dict[str, str] = {}
    for name, value in list(record.headers.items())[:MAX_HEADERS]:
        headers[name[:MAX_HEADER_CHARS]] = value[:MAX_HEADER_CHARS]
    return events.DeadLetter(
        service=service,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        record_key=None if record.key is None else record.key[:MAX_KEY_BYTES],
        original=record.value[: max(original_bytes, 0)],
        original_size=len(record.value),
        original_sha256=hashlib.sha256(record.value).hexdigest(),
        headers=headers,
        reason=reason[:200],
        error=error[:MAX_ERROR_CHARS],
    )


class DeadLetters:
    """Publishes dead-letter records for one service.

    ``original_bytes`` bounds how much of a body a letter keeps; a letter that would still be
    over ``max_bytes`` (long multi-byte errors, many headers) keeps only the size, hash, key and
    the start of the error. A publish failure is counted
    and raises ``DeadLetterFailed`` after a pause that doubles with each consecutive failure (up
    to ``max_backoff_s``): the message is redelivered, and a broker that refuses letters costs
    a retry every few seconds, not a hot loop.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        topics: TopicNames,
        service: str,
        *,
        max_bytes: int = 1_048_576,
        original_bytes: int = 16_384,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._broker = broker
        self._topics = topics
        self.service = service
        self.max_bytes = max_bytes
        self.original_bytes = original_bytes
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.consecutive_failures = 0

    def next_backoff_s(self) -> float:
        """The pause before the next redelivery after ``consecutive_failures`` failures."""
        return backoff_after(self.consecutive_failures, self.backoff_s, self.max_backoff_s)

    async def send(self, record: Record, source: TopicSpec, reason: str, error: str) -> None:
        letter = bounded_letter(record, service=self.service, reason=reason, error=error,
                                original_bytes=self.original_bytes)  # fmt: skip
        body = events.encode(letter)
        if len(body) > self.max_bytes:
            letter = letter.model_copy(update={"original": b"", "headers": {},
                                               "error": letter.error[:500]})  # fmt: skip
            body = events.encode(letter)
        try:
            await self._broker.publish(body, self._topics.dlq(source), key=letter.key)
        except Exception as exc:
            self.consecutive_failures += 1
            DEAD_LETTER_FAILURES.labels(self.service, source.name).inc()
            pause = self.next_backoff_s()
            log.warning(
                "could not publish a dead letter; the message is redelivered",
                extra={"topic": record.topic, "offset": record.offset, "reason": reason,
                       "error": repr(exc)[:500], "backoff_s": pause},
            )  # fmt: skip
            await asyncio.sleep(pause)
            raise DeadLetterFailed(f"dead letter for {record.topic}@{record.offset}") from exc
        self.consecutive_failures = 0
        MESSAGES_DEAD_LETTERED.labels(self.service, source.name, reason).inc()
        log.warning(
            "dead-lettered a message",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason},
        )


Check = Callable[[Record, T], None]
"""A check of a decoded message that raises ``PoisonMessage`` when it must not be processed."""


def read_record(
    record: Record,
    adapter: TypeAdapter[T],
    *,
    max_bytes: int,
    authenticate: Callable[[Record], None] | None = None,
    checks: Sequence[Check[T]] = (),
) -> T:
    """The message of a record, or ``PoisonMessage``: ``authenticate`` runs before decoding
    (a record that must not be trusted), each of ``checks`` on the decoded message (a
    forbidden reply topic, a key that is not the event's)."""
    if authenticate is not None:
        authenticate(record)
    event = decode(adapter, record.value, max_bytes=max_bytes)
    for check in checks:
        check(record, event)
    return event


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
        checks: Sequence[Check[T]] = (),
    ) -> None:
        """``authenticate`` raises ``PoisonMessage`` for a record that must not be trusted (run
        before decoding); each of ``checks`` for a decoded message that must not be processed
        (a forbidden reply topic, a key that is not the event's)."""
        self.source = source
        self.adapter = adapter
        self.dead_letters = dead_letters
        self.max_bytes = max_bytes
        self.authenticate = authenticate
        self.checks = tuple(checks)

    async def open(self, record: Record) -> T | None:
        """Decode one record; None when it was dead-lettered."""
        MESSAGES_CONSUMED.labels(self.dead_letters.service, self.source.name).inc()
        try:
            return read_record(record, self.adapter, max_bytes=self.max_bytes,
                               authenticate=self.authenticate, checks=self.checks)  # fmt: skip
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
