"""The generation service: grounded requests -> ``Serving`` -> responses on their reply topics.

Keeps up to ``max_in_flight`` generations running at once (the vLLM engine batches them
continuously); the consumer takes the next messages while earlier ones generate and pauses only
when ``queue_max`` more wait for a slot (backpressure). Slots are shared fairly by tenants
(``FairSlots``: a share per tenant while others are active, freed slots to the waiting
tenant holding the fewest). A client's
``ChatCancel`` aborts its request, queued or generating (``Cancellations``).
``OrderedCommitter`` commits offsets behind finished work only. Every request gets a response:
a failure, a timeout or a cancel becomes an error response, never silence (``ResponseDelivery``
publishes it).
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream import AckPolicy
from opentelemetry.trace import Span
from prometheus_client import Gauge, Histogram
from pydantic import TypeAdapter

from services.generation.backends.base import GenerationBackend
from services.generation.backends.factory import make_backend
from services.generation.cancels import CANCELLED, Cancellations
from services.generation.committer import OrderedCommitter
from services.generation.delivery import ResponseDelivery
from services.generation.reply_topics import ReplyTopics
from services.generation.revocation import REVOCATION_SECONDS, REVOKED, PartitionWork
from services.generation.serving import (
    ERRORS,
    TOKENS,
    TOKENS_PER_S,
    TTFT,
    Serving,
    traced_response,
)
from services.generation.settings import GenerationSettings
from shared import events
from shared.consumers import Commits
from shared.dlq import DeadLetterFailed, Record
from shared.events.base import new_id
from shared.fairness import FairSlots
from shared.guards import grounded_reply_guard
from shared.kafka import admin_client
from shared.metrics import LATENCY_BUCKETS_S
from shared.service import Service
from shared.subscription import Batch, Subscription
from shared.topics import AUDIT_ENTRIES, CHAT_CANCELS, CHAT_GROUNDED, CHAT_TOKENS, REPLY_TOPICS

IN_FLIGHT = Gauge("alignstream_generation_in_flight", "Generations running now.")
QUEUE_WAIT = Histogram(
    "alignstream_generation_queue_wait_seconds",
    "From consumed to a free generation slot.",
    buckets=LATENCY_BUCKETS_S,
)

GroundedAdapter: TypeAdapter[events.GroundedRequest] = TypeAdapter(events.GroundedRequest)
CancelAdapter: TypeAdapter[events.ChatCancel] = TypeAdapter(events.ChatCancel)


class GenerationService(Service):
    name = "generation"
    settings_class = GenerationSettings
    metrics = (IN_FLIGHT, QUEUE_WAIT, TTFT, TOKENS, TOKENS_PER_S, ERRORS, CANCELLED, REVOKED,
               REVOCATION_SECONDS)  # fmt: skip

    def __init__(
        self, settings: GenerationSettings, backend: GenerationBackend | None = None
    ) -> None:
        super().__init__(settings)
        self.settings: GenerationSettings = settings
        self.committer = OrderedCommitter()
        grace_s = min(settings.revoke_grace_s, settings.kafka.revocation_wait_s)
        self.work: PartitionWork[TopicPartition] = PartitionWork(
            grace_s, settings.revoke_delivery_bound_s, self.committer.settle
        )
        grounded = Subscription(
            CHAT_GROUNDED,
            GroundedAdapter,
            max_records=settings.fetch_max,
            batch_timeout_ms=settings.batch_wait_ms,
            ack_policy=AckPolicy.MANUAL,  # committed by the committer, behind finished work
            checks=(grounded_reply_guard(self.topics),),
            chat_path=True,
            decoded=False,  # opened one by one: a dead letter that fails holds its offset
            on_revoked=self.work.revoke,  # finish or abort, never both (``revocation.py``)
            on_assigned=self.work.assigned,
        )
        self.inbox = self.subscribe(grounded, self.on_grounded)
        # Every instance reads every cancel (a group of its own): any of them may hold the
        # request. Read through the drain: the drain waits on the work they cancel.
        cancels = Subscription(CHAT_CANCELS, CancelAdapter, max_records=256,
                               batch_timeout_ms=settings.batch_wait_ms,
                               group_id=f"{settings.group_id}.cancels.{new_id()[:12]}",
                               pause_on_drain=False, chat_path=True)  # fmt: skip
        self.cancel_inbox = self.subscribe(cancels, self.on_cancels)
        self.cancellations = Cancellations()
        for replies in REPLY_TOPICS:
            self.publishes(replies, why="answers, to the reply topic the request names (or a "
                                        "client's own replies.<name> topic)")  # fmt: skip
        self.publishes(CHAT_TOKENS)
        self.publishes(AUDIT_ENTRIES, why="one entry per answered request (when audit is on)")
        self._admin: AIOKafkaAdminClient | None = None  # made in on_start: it needs the loop
        reply_topics = ReplyTopics(self._list_topics,
                                   timeout_s=settings.reply_topic_check_timeout_s)  # fmt: skip
        audit = settings.audit_questions if settings.audit else None
        self.delivery = ResponseDelivery(self, self.inbox, settings.retry_backoff_s,
                                         lambda: self.stopping, reply_topics, audit)  # fmt: skip
        self.serving = Serving(backend or make_backend(settings), settings,
                               self.delivery.publish_token)  # fmt: skip
        shared_cap = max(1, int(settings.max_in_flight * settings.tenant_share))
        self.slots = FairSlots(settings.max_in_flight, settings.max_in_flight_per_tenant,
                               shared_cap=shared_cap)  # fmt: skip
        self._window = asyncio.Semaphore(settings.max_in_flight + settings.queue_max)
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_start(self) -> None:
        self._admin = admin_client(self.settings.kafka)
        await self._admin.start()
        await self.serving.start()

    async def on_draining(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.request_timeout_s)

    async def on_stop(self) -> None:
        if self._admin is not None:
            await self._admin.close()
        await self.serving.close()

    async def _list_topics(self) -> set[str]:
        assert self._admin is not None, "generation not started"
        return set(await self._admin.list_topics())

    async def is_live(self) -> bool:
        return self.serving.alive()

    async def on_grounded(self, batch: Batch[events.GroundedRequest]) -> None:
        # FastStream types the consumer as its own protocol; it is aiokafka's, which commits
        # explicit offsets.
        consumer = cast(Commits, batch.consumer)
        for record in batch.records:
            partition = TopicPartition(record.topic, record.partition or 0)
            if not self.work.accepts(partition):
                continue  # revoked since fetched: its next owner reads it
            self.committer.consumed(consumer, partition, record.offset or 0)
            try:
                grounded = await self._open(record)
            except DeadLetterFailed:  # stopping: left unfinished, redelivered after restart
                continue
            if grounded is None:  # dead-lettered
                await self.committer.finished(partition, record.offset or 0)
                continue
            span = self.tracing.tracer.start_span(
                "generation.generate", context=self.tracing.continued(record.headers),
                attributes={"alignstream.tenant": grounded.request.tenant,
                            "alignstream.strategy": grounded.request.strategy.value},
            )  # fmt: skip
            await self._window.acquire()  # backpressure: queue_max requests wait already
            if not self.work.accepts(partition):  # revoked while waiting
                self._window.release()
                span.end()
                continue
            task = asyncio.create_task(self._serve(grounded, record, partition, span))
            self.work.track(partition, task)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def on_cancels(self, batch: Batch[events.ChatCancel]) -> None:
        for cancel in batch.events:
            self.cancellations.cancel(cancel)

    async def _open(self, record: Record) -> events.GroundedRequest | None:
        """Decode a record; None when dead-lettered. A dead letter that cannot be published is
        retried here (each failure backs off) until it is, or the service stops: this consumer
        commits by hand, so a record given up on would hold back its partition's commits."""
        while True:
            try:
                return await self.inbox.open(record)
            except DeadLetterFailed:
                if self.stopping:
                    raise

    async def _serve(
        self,
        grounded: events.GroundedRequest,
        record: Record,
        partition: TopicPartition,
        span: Span,
    ) -> None:
        try:
            refused = await self.delivery.refuse_missing_reply_topic(grounded.request, record)
            if refused is not None:
                done = refused
            else:
                response = await self._answer(grounded, span)
                traced_response(span, response)
                if not self.work.may_deliver():
                    return  # revoked: aborted, its next owner answers it
                answering = self.serving.answering(grounded.request)
                done = await self.delivery.deliver(answering, record, response,
                                                   headers=self.tracing.headers(span))  # fmt: skip
        finally:
            self._window.release()
            span.end()
        if done:
            await self.committer.finished(partition, record.offset or 0)

    async def _answer(self, grounded: events.GroundedRequest, span: Span) -> events.ChatResponse:
        """The answer, or a ``cancelled`` error when the client cancelled the request first."""
        request = grounded.request
        # A cancel that came first: answered at once, nothing generated.
        with self.cancellations.tracking(request):
            if not self.cancellations.was_cancelled(request):
                try:
                    return await self._generate(grounded, span)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or not self.cancellations.requested(request):
                        raise  # the service stops: redelivered after the restart
                    task.uncancel()
        answering = self.serving.answering(request)
        return answering.error(events.ErrorKind.CANCELLED, "the client cancelled the request")

    async def _generate(self, grounded: events.GroundedRequest, span: Span) -> events.ChatResponse:
        """The answer, generated in a slot of the request's tenant."""
        request = grounded.request
        queued = time.perf_counter()
        async with self.slots.slot(request.tenant):
            if not self.work.may_generate():
                raise asyncio.CancelledError  # revoked while queued: its next owner answers it
            waited = time.perf_counter() - queued
            QUEUE_WAIT.observe(waited)
            span.set_attribute("alignstream.queue_wait_ms", waited * 1000)
            IN_FLIGHT.inc()
            try:
                response = await self.serving.respond(grounded)
            finally:
                IN_FLIGHT.dec()
        timings = response.timings.model_copy(update={"queue_ms": waited * 1000})
        return response.model_copy(update={"timings": timings})
