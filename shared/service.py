"""The lifecycle every service shares: topics, broker, health endpoint, clean shutdown.

A service subclasses ``Service``: it registers its subscribers on ``self.broker`` in
``__init__`` and may override ``on_start``/``on_stop``/``is_ready``. ``start``/``stop`` are used
by tests and the demo (several services in one process); ``run`` serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client.registry import Collector

from shared.consumers import InputConsumers
from shared.dlq import DeadLetters, Inbox, records_of
from shared.events import Event, encode, key_bytes
from shared.http import HealthServer
from shared.kafka import OversizedMessage, consumer_options, ensure_topics, make_broker
from shared.loop_lag import LoopLag
from shared.metrics import HANDLER_SECONDS, SERVICE_UP, service_registry
from shared.settings import ServiceSettings
from shared.signing import PipelineSignatures
from shared.subscription import Batch, Subscription
from shared.topic_checks import require_compacted_rules
from shared.topics import TopicNames, TopicSpec
from shared.tracing import Tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = str | bytes | None
Delivery = Awaitable[Any]
"""A message handed to the producer; awaiting it waits for the broker's acknowledgement."""
Handler = Callable[[Batch[Any]], Awaitable[None]]
Headers = Sequence[Mapping[str, str]] | None
"""One set of headers per record (signatures are added to those of signed topics)."""
PHASE_FLOOR_S = 5.0
"""Each shutdown phase gets at least this, even when the drain used the budget (the chart's
grace periods add 30 s to the budget: the three later phases' floors and a margin)."""


class Publisher(Protocol):
    """What a service's domain core needs to publish: topic names and bounded, batched sends
    (``Service`` is one; tests may pass another)."""

    name: str
    topics: TopicNames

    def encode_bounded(self, event: Event) -> bytes: ...

    async def publish_all(self, topic: str, outgoing: Iterable[Event]) -> None: ...

    async def publish_bodies(
        self, topic: str, bodies: Iterable[tuple[Key, bytes]], *, headers: Headers = None
    ) -> None: ...


class Service:
    name: str = "service"
    settings_class: ClassVar[type[ServiceSettings]] = ServiceSettings
    """What ``from_env`` reads (each service its own, with its own prefix)."""
    metrics: ClassVar[tuple[Collector, ...]] = ()
    """This service's own metric families (``/metrics`` adds the shared ones)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.topics: TopicNames = settings.kafka.topics
        self.broker: KafkaBroker = make_broker(
            settings.kafka,
            client_id=f"alignstream-{self.name}",
            max_message_bytes=settings.max_message_bytes,
            logger=log,
            log_level=logging.DEBUG,  # FastStream's per-message and per-batch lines
        )
        self.dead_letters = DeadLetters(
            self.broker,
            self.topics,
            self.name,
            max_bytes=settings.max_message_bytes,
            original_bytes=settings.dead_letter_original_bytes,
            backoff_s=settings.retry_backoff_s,
        )
        self.health = HealthServer(
            settings.observability.http_host,
            settings.observability.http_port,
            ready=self.is_ready,
            live=self._is_live,
            registry=service_registry(self.metrics),
        )
        self.tracing = Tracing(self.name, settings.observability)
        self.signatures = PipelineSignatures(settings.kafka)
        self.inputs = InputConsumers()
        self.loop_lag = LoopLag(self.name)
        self._started = False
        self._stopping = False

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """The service with settings from the environment (``overrides`` win)."""
        return cls(cls.settings_class(**overrides))

    # Hooks for subclasses --------------------------------------------------------------

    async def on_start(self) -> None:
        """Before consuming starts (connect to Redis, load models, create indexes)."""

    async def on_running(self) -> None:
        """After the broker is connected (start background work that publishes)."""

    async def on_draining(self) -> None:
        """Before consuming stops: finish work in flight outside the handlers."""

    async def on_stop(self) -> None:
        """After consuming stopped and in-flight messages are done."""

    async def is_ready(self) -> bool:
        return self._started

    async def is_live(self) -> bool:
        """False when the service cannot recover by itself (its engine died): the liveness
        probe restarts the pod. A stopped consume loop is checked for every service."""
        return True

    @property
    def stopping(self) -> bool:
        """True once ``stop`` began: retry loops give up."""
        return self._stopping

    def subscribe(
        self,
        subscription: Subscription[T],
        handler: Handler,
        *,
        on_failure: Callable[[], None] | None = None,
    ) -> Inbox[T]:
        """Consume ``subscription``'s topic in batches with ``handler``; the inbox that decodes
        (and dead-letters) its records. The handler is timed; when it raises (Redis, the
        embedder or the broker failed), ``on_failure`` runs and the batch is redelivered after
        ``retry_backoff_s``, so an outage is never a busy loop."""
        spec = subscription.topic
        inbox = Inbox(
            spec,
            subscription.adapter,
            self.dead_letters,
            max_bytes=self.settings.max_message_bytes,
            authenticate=subscription.authenticate or self.signatures.check_for(self.topics(spec)),
            checks=subscription.checks,
        )
        timer = HANDLER_SECONDS.labels(self.name, spec.name)

        async def handle(message: KafkaMessage) -> None:
            with timer.time():
                try:
                    raw = message.raw_message
                    records = records_of(raw)
                    with listener.handling(records):  # a revocation waits for the batch
                        opened = await inbox.open_batch(raw) if subscription.decoded else []
                        await handler(Batch(records, opened, message.consumer))
                except Exception:
                    if on_failure is not None:
                        on_failure()
                    await asyncio.sleep(self.settings.retry_backoff_s)
                    raise

        handle.__name__ = handle.__qualname__ = handler.__name__  # names the AsyncAPI operation
        fetch: dict[str, Any] = {"max_records": subscription.max_records}
        if subscription.batch_timeout_ms is not None:
            fetch["batch_timeout_ms"] = subscription.batch_timeout_ms
        listener = self.inputs.listener(on_revoked=subscription.on_revoked,
                                        on_assigned=subscription.on_assigned,
                                        settle_s=self.settings.kafka.revocation_wait_s)  # fmt: skip
        subscriber = self.broker.subscriber(
            self.topics(spec),
            listener=listener,
            batch=True,
            ack_policy=subscription.ack_policy,
            title=f"{spec.name}@{self.name}",
            description=spec.description,
            **fetch,
            **consumer_options(
                self.settings.kafka,
                group_id=subscription.group_id or self.settings.group_id,
                topic=spec.name,
                chat_path=subscription.chat_path,
            ),
        )
        subscriber(handle)
        self.inputs.add(subscriber, spec.name, pause_on_drain=subscription.pause_on_drain,
                        listener=listener)  # fmt: skip
        self.publishes(spec.dead_letter())
        return inbox

    def publishes(self, spec: TopicSpec, *, why: str = "") -> None:
        """Declare that this service publishes ``spec``'s events (``publish_all`` and
        ``publish_bodies`` do the sending); the declarations make the AsyncAPI document
        (``services/asyncapi.py``)."""
        # A service that also consumes the topic (ingest: the rule log) names its sending side
        # apart: one title per channel and action.
        consumes = spec.name in self.inputs.names()
        self.broker.publisher(
            self.topics(spec),
            title=f"{spec.name}@{self.name}" + (".send" if consumes else ""),
            description=why or spec.description,
            schema=spec.value,
        )

    def encode_bounded(self, event: Event) -> bytes:
        """The event's wire bytes; ``OversizedMessage`` when over ``max_message_bytes`` (the
        broker would refuse it, and a retry could never succeed)."""
        body = encode(event)
        if len(body) > self.settings.max_message_bytes:
            raise OversizedMessage(len(body), self.settings.max_message_bytes)
        return body

    async def publish_all(self, topic: str, outgoing: Iterable[Event]) -> None:
        """Publish events under their keys: enqueue all, then wait for every delivery at once
        (one round of produce requests instead of one awaited send per event). Every event is
        size-checked before the first is sent (``OversizedMessage``)."""
        await asyncio.gather(*await self.enqueue_all(topic, outgoing))

    async def publish_bodies(
        self, topic: str, bodies: Iterable[tuple[Key, bytes]], *, headers: Headers = None
    ) -> None:
        """Publish encoded events (checked by ``encode_bounded``) with their keys and, when
        given, one set of headers each (the trace context of the request each answers)."""
        await asyncio.gather(*await self.enqueue_bodies(topic, bodies, headers=headers))

    async def enqueue_all(self, topic: str, outgoing: Iterable[Event]) -> list[Delivery]:
        """``publish_all`` without the wait: the events are handed to the producer, in order;
        the caller awaits their deliveries (before it commits what they answer)."""
        return await self.enqueue_bodies(topic, [(e.key, self.encode_bounded(e)) for e in outgoing])

    async def enqueue_bodies(
        self, topic: str, bodies: Iterable[tuple[Key, bytes]], *, headers: Headers = None
    ) -> list[Delivery]:
        items = list(bodies)
        each = headers if headers is not None else [{}] * len(items)
        sign = self.signatures.sign
        return [
            await self.broker.publish(body, topic, key=key_bytes(key), no_confirm=True,
                                      headers=sign(topic, key_bytes(key), body, extra) or None)
            for (key, body), extra in zip(items, each, strict=True)
        ]  # fmt: skip

    # Lifecycle ------------------------------------------------------------------------

    async def _is_live(self) -> bool:
        if self._started and (stopped := self.inputs.stopped()):
            log.error("consume loop stopped", extra={"service": self.name, "topics": stopped})
            return False
        return await self.is_live()

    async def start(self) -> None:
        self._stopping = False
        await ensure_topics(self.settings.kafka)
        await require_compacted_rules(self.settings.kafka)
        await self.on_start()
        await self.broker.start()
        await self.health.start()
        await self.on_running()
        self.loop_lag.start()
        self._started = True
        SERVICE_UP.labels(self.name).set(1)
        log.info("service started", extra={"service": self.name, "http_port": self.health.port})

    async def stop(self) -> None:
        self._started = False
        self._stopping = True
        SERVICE_UP.labels(self.name).set(0)
        # No new input while the work in flight finishes (what is not fetched stays uncommitted
        # and goes to the group's next member).
        paused = self.inputs.pause()
        log.info("draining", extra={"service": self.name, "partitions_paused": paused})
        # One budget for the whole shutdown (the pod's grace period is set from it): draining
        # takes what it needs of it, every later phase still gets at least PHASE_FLOOR_S, so a
        # stuck handler or backend never keeps a pod from stopping (work not finished is not
        # committed and is redelivered to another consumer).
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_timeout_s
        await self._bounded("draining", self.on_draining(), deadline)
        # The broker waits (graceful_timeout) for handlers in flight before closing consumers,
        # so no offset is committed for unfinished work.
        await self._bounded("stopping the broker", self.broker.stop(), deadline)
        await self._bounded("closing", self.on_stop(), deadline)
        await self._bounded("exporting traces", self.tracing.close(), deadline)
        await self.loop_lag.stop()
        await self.health.stop()
        log.info("service stopped", extra={"service": self.name})

    async def _bounded(self, phase: str, work: Coroutine[Any, Any, None], deadline: float) -> None:
        left = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(work, timeout=max(left, PHASE_FLOOR_S))
        except TimeoutError:
            log.warning("shutdown phase timed out", extra={"service": self.name, "phase": phase})

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
