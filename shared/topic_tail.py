"""Reading replies from topics, for clients: a topic's tail from its current end (no consumer
group, so nothing before it and nothing another reader takes), and the chat responses awaited
on it, matched by tenant and request id. Replies come back on topics, not through
``broker.request()`` (which real Kafka does not support)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import events
from shared.dlq import PoisonMessage, Record
from shared.errors import NoAnswer
from shared.kafka import client_security_kwargs
from shared.settings import KafkaSettings
from shared.signing import PipelineSignatures

T = TypeVar("T")


class RepliesMissing(TimeoutError):
    """Not every awaited reply arrived in time."""

    def __init__(self, missing: int, wanted: int, topic: str, timeout_s: float) -> None:
        super().__init__(f"{missing} of {wanted} replies missing on {topic} after {timeout_s}s")
        self.missing, self.wanted, self.timeout_s = missing, wanted, timeout_s


class TopicTail:
    """Reads a topic from its current end, across all partitions, without a consumer group.
    With the pipeline signing key set, records of a signed topic (responses, reply topics)
    whose signature does not verify are skipped and counted (``rejected``)."""

    def __init__(self, settings: KafkaSettings, topic: str, *, chat_path: bool = False) -> None:
        """``chat_path``: answers every chat request waits for (fetched with the chat path's
        shorter wait, ``chat_fetch_max_wait_ms``)."""
        self.settings = settings
        self.topic = topic
        self._check = PipelineSignatures(settings).check_for(topic)
        self.rejected = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_wait_ms(chat_path=chat_path),
            **client_security_kwargs(settings),
        )

    async def start(self) -> None:
        await self._consumer.start()
        partitions = [
            TopicPartition(self.topic, p)
            for p in sorted(self._consumer.partitions_for_topic(self.topic) or ())
        ]
        if not partitions:
            await self._consumer.stop()
            raise RuntimeError(f"topic {self.topic} does not exist (is the stack up?)")
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end offsets now, before anything is published
            await self._consumer.position(partition)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def values(self, timeout_ms: int = 100) -> list[bytes]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        raws = [r for records in batches.values() for r in records if r.value is not None]
        return [r.value for r in raws if self._authentic(r)]

    def _authentic(self, raw: Any) -> bool:
        if self._check is None:
            return True
        try:
            self._check(Record.from_consumer_record(raw))
        except PoisonMessage:
            self.rejected += 1
            return False
        return True

    async def collect(
        self,
        parse: Callable[[bytes], T],
        key: Callable[[T], str],
        wanted: Iterable[str],
        *,
        timeout_s: float,
        on_item: Callable[[T], None] | None = None,
    ) -> dict[str, T]:
        """Read until one item per wanted key has arrived; items with other keys (older
        messages, other clients') and repeats (redeliveries) are skipped. Returned in arrival
        order; TimeoutError says how many are missing."""
        pending = set(wanted)
        found: dict[str, T] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise RepliesMissing(len(pending), len(pending) + len(found), self.topic,
                                     timeout_s)  # fmt: skip
            for value in await self.values():
                try:
                    item = parse(value)
                except ValueError:  # anyone may write to a topic: skip what is not a reply
                    continue
                if (item_key := key(item)) in pending:
                    pending.discard(item_key)
                    found[item_key] = item
                    if on_item is not None:
                        on_item(item)
        return found


async def collect_responses(
    tail: TopicTail,
    wanted: Iterable[str],
    *,
    tenant: str,
    timeout_s: float,
    on_response: Callable[[events.ChatResponse], None] | None = None,
) -> dict[str, events.ChatResponse]:
    """One chat response per wanted request id of ``tenant``, from a tail on a responses topic
    (repeats from redeliveries skipped), by request id."""
    return await collect_replies(tail, [(tenant, request_id) for request_id in wanted],
                                 timeout_s=timeout_s, on_response=on_response)  # fmt: skip


async def collect_replies(
    tail: TopicTail,
    wanted: Iterable[tuple[str, str]],
    *,
    timeout_s: float,
    on_response: Callable[[events.ChatResponse], None] | None = None,
) -> dict[str, events.ChatResponse]:
    """One chat response per wanted ``(tenant, request id)``, by request id. A response is
    matched on both: one with the right id but another tenant (a forgery, or a collision of
    client-chosen ids) is not taken."""
    found = await tail.collect(events.ChatResponse.model_validate_json, _reply_key,
                               (f"{t}:{r}" for t, r in wanted), timeout_s=timeout_s,
                               on_item=on_response)  # fmt: skip
    return {response.request_id: response for response in found.values()}


E = TypeVar("E", bound=events.Event)


def parsed_event(model: type[E], value: bytes) -> E | None:
    """The event, or None for a message that is not one (a topic anyone may write to)."""
    try:
        return model.model_validate_json(value)
    except ValueError:
        return None


async def which_stage_stalled(
    grounded: TopicTail, requests: Sequence[events.ChatRequest], message: str
) -> NoAnswer:
    """Which stage did not answer: retrieval (no grounded request came out) or generation."""
    wanted = {(r.tenant, r.request_id) for r in requests}
    while values := await grounded.values(timeout_ms=200):
        for value in values:
            item = parsed_event(events.GroundedRequest, value)
            if item is not None and (item.request.tenant, item.request.request_id) in wanted:
                return NoAnswer(f"{message}: retrieval grounded it, generation did not answer",
                                stage="generation")  # fmt: skip
    return NoAnswer(f"{message}: retrieval did not ground it", stage="retrieval")


def _reply_key(response: events.ChatResponse) -> str:
    return f"{response.tenant}:{response.request_id}"
