"""The generation service: grounded requests -> prompt -> backend -> response on the reply topic.

Keeps up to ``max_in_flight`` generations running at once (the vLLM engine batches them
continuously); the consumer takes the next messages while earlier ones generate and pauses only
when the window is full (backpressure). Offsets are committed behind finished work only. Every
request gets a response: a failure or a timeout becomes an error response, never silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Gauge, Histogram
from pydantic import TypeAdapter

from services.generation.backends.base import (
    BackendError,
    CountsTokens,
    GenerationBackend,
    GenerationInput,
    HasTokenizer,
)
from services.generation.backends.factory import make_backend
from services.generation.inflight import OffsetTracker
from services.generation.prompts import build_prompt
from services.generation.prompts.drpo import strip_markers
from services.generation.prompts.fencing import DEFAULT as DEFAULT_NEUTRALIZER
from services.generation.prompts.fencing import Neutralizer
from services.generation.settings import GenerationSettings
from services.generation.streaming import TokenStream
from shared import events
from shared.dlq import DeadLetterFailed, PoisonMessage, Record, backoff_after, records_of
from shared.guards import grounded_reply_guard
from shared.kafka import OversizedMessage, consumer_options, is_final_publish_error
from shared.metrics import LATENCY_BUCKETS_S, UNPUBLISHABLE
from shared.prompt_sets import PromptSet
from shared.service import Service
from shared.topics import CHAT_GROUNDED, CHAT_RESPONSES, CHAT_TOKENS, EXAM_ANSWERS

log = logging.getLogger(__name__)

IN_FLIGHT = Gauge("alignstream_generation_in_flight", "Generations running now.")
QUEUE_WAIT = Histogram(
    "alignstream_generation_queue_wait_seconds",
    "From consumed to a free generation slot.",
    buckets=LATENCY_BUCKETS_S,
)
TTFT = Histogram(
    "alignstream_generation_ttft_seconds", "Time to first token.", buckets=LATENCY_BUCKETS_S
)
TOKENS = Counter("alignstream_generation_tokens_total", "Generated tokens.", ["backend"])
TOKENS_PER_S = Histogram(
    "alignstream_generation_tokens_per_second",
    "Completion tokens per second of one request.",
    buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
ERRORS = Counter("alignstream_generation_errors_total", "Error responses, by kind.", ["kind"])

GroundedAdapter: TypeAdapter[events.GroundedRequest] = TypeAdapter(events.GroundedRequest)


class GenerationService(Service):
    name = "generation"
    metrics = (IN_FLIGHT, QUEUE_WAIT, TTFT, TOKENS, TOKENS_PER_S, ERRORS)

    def __init__(
        self, settings: GenerationSettings, backend: GenerationBackend | None = None
    ) -> None:
        super().__init__(settings)
        self.settings: GenerationSettings = settings
        self.backend = backend or make_backend(settings)
        self.inbox = self.make_inbox(
            CHAT_GROUNDED, GroundedAdapter, checks=[grounded_reply_guard(self.topics)]
        )
        self.drpo = (
            PromptSet.from_drpo_files(settings.drpo_system_prompt, settings.drpo_examples)
            if settings.drpo_system_prompt
            else None
        )
        self.neutralizer = DEFAULT_NEUTRALIZER
        """Removes control markers from untrusted prompt text (the model's own, once started)."""
        self._count_tokens: Callable[[str], int] | None = None
        """The model's tokenizer (OPO's budget), when the backend has it locally."""
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._consumer: Any = None
        self._own_reply_topics = {self.topics(CHAT_RESPONSES), self.topics(EXAM_ANSWERS)}
        self.broker.subscriber(
            self.topics(CHAT_GROUNDED),
            batch=True,
            max_records=settings.fetch_max,
            batch_timeout_ms=5,
            ack_policy=AckPolicy.MANUAL,  # committed by _finish, behind finished work
            **consumer_options(settings.kafka, group_id=settings.group_id),
        )(self.on_grounded)

    @classmethod
    def from_env(cls) -> GenerationService:
        return cls(GenerationSettings())

    async def on_start(self) -> None:
        await self.backend.start()
        if isinstance(self.backend, HasTokenizer):
            # The deployed model's own markers, besides the known template families.
            self.neutralizer = Neutralizer(self.backend.control_tokens())
        if isinstance(self.backend, CountsTokens):
            self._count_tokens = self.backend.count_tokens

    async def on_draining(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.request_timeout_s)

    async def on_stop(self) -> None:
        await self.backend.close()

    async def on_grounded(self, message: KafkaMessage) -> None:
        self._consumer = message.consumer
        for record in records_of(message.raw_message):
            partition = TopicPartition(record.topic, record.partition or 0)
            self._offsets.start(partition, record.offset or 0)
            try:
                grounded = await self._open(record)
            except DeadLetterFailed:  # stopping: left unfinished, redelivered after restart
                continue
            if grounded is None:  # dead-lettered
                await self._finish(partition, record.offset or 0)
                continue
            consumed = time.perf_counter()
            await self._slots.acquire()  # backpressure: wait for a free slot
            QUEUE_WAIT.observe(time.perf_counter() - consumed)
            task = asyncio.create_task(self._serve(grounded, record, partition))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
        self, grounded: events.GroundedRequest, record: Record, partition: TopicPartition
    ) -> None:
        IN_FLIGHT.inc()
        try:
            response = await self.respond(grounded)
            done = await self._deliver(grounded, record, response)
        finally:
            IN_FLIGHT.dec()
            self._slots.release()
        if done:
            await self._finish(partition, record.offset or 0)

    async def _deliver(
        self, grounded: events.GroundedRequest, record: Record, response: events.ChatResponse
    ) -> bool:
        """Publish a response, retrying through a broker outage (an unpublished response would
        hold back every later commit of its partition). A response over the size limit is
        replaced by an error response; one that can never be published (forbidden, missing or
        invalid topic) dead-letters its request. True when the request is done with; False when
        the service stops first (the offset stays uncommitted and the request is redelivered)."""
        topic = grounded.request.reply_topic or self.topics(CHAT_RESPONSES)
        try:
            body = self.encode_bounded(response)
        except OversizedMessage as exc:
            UNPUBLISHABLE.labels(self.name, "response").inc()
            response = self._error(_fields(grounded.request, self.backend),
                                   events.ErrorKind.INVALID_REQUEST,
                                   f"the answer is {exc.size} bytes, over the {exc.limit}-byte "
                                   "message limit; lower max_tokens")  # fmt: skip
            try:
                body = self.encode_bounded(response)
            except OversizedMessage as again:  # the echoed metadata alone is too large
                return await self._unpublishable(record, topic, again)
        ours = topic in self._own_reply_topics
        failures = 0
        while True:
            try:
                await self.publish_bodies(topic, [(response.key, body)])
                return True
            except Exception as exc:
                if is_final_publish_error(exc, topic_is_ours=ours):
                    return await self._unpublishable(record, topic, exc)
                failures += 1
                log.warning("could not publish a response; retrying", exc_info=True,
                            extra={"request_id": response.request_id})  # fmt: skip
            if self.stopping:
                return False
            await asyncio.sleep(backoff_after(failures, self.settings.retry_backoff_s))

    async def _unpublishable(self, record: Record, topic: str, exc: BaseException) -> bool:
        """Dead-letter the request whose response can never be published to ``topic``
        (retrying the dead letter with back-off); False when the service stops first."""
        UNPUBLISHABLE.labels(self.name, "reply").inc()
        detail = f"response to {topic[:300]!r} cannot be published: {exc!r}"[:2000]
        while True:
            try:
                await self.inbox.reject(record, PoisonMessage("unpublishable_reply", detail))
                return True
            except DeadLetterFailed:
                if self.stopping:
                    return False

    async def _finish(self, partition: TopicPartition, offset: int) -> None:
        commit = self._offsets.finish(partition, offset)
        if commit is not None and self._consumer is not None:
            try:
                await self._consumer.commit({partition: commit})
            except Exception:  # rebalanced away: the new owner redelivers
                log.warning("offset commit failed", extra={"partition": str(partition)})
                self._offsets.forget(partition)

    async def respond(self, grounded: events.GroundedRequest) -> events.ChatResponse:
        """Generate the answer to one grounded request, or an error response."""
        request = grounded.request
        prompt = build_prompt(grounded, drpo_fallback=self.drpo, drpo_k=self.settings.drpo_k,
                              fence_rules=self.settings.fence_rules,
                              neutralizer=self.neutralizer,
                              count_tokens=self._count_tokens)  # fmt: skip
        common = _fields(request, self.backend)
        common["searched_scope"] = grounded.searched_scope
        started = time.perf_counter()
        stream = self._token_stream(request) if request.stream else None
        try:
            output = await asyncio.wait_for(
                self.backend.generate(
                    GenerationInput(
                        request_id=f"{request.request_id}-{time.monotonic_ns()}",
                        messages=prompt.messages,
                        params=request.params,
                        continue_final=prompt.continue_final,
                        stop=prompt.stop,
                        on_text=stream.add if stream is not None else None,
                    )
                ),
                timeout=self.settings.request_timeout_s,
            )
        except TimeoutError:
            return self._error(common, events.ErrorKind.TIMEOUT, "generation timed out")
        except BackendError as exc:
            return self._error(common, events.ErrorKind.BACKEND, str(exc))
        except Exception as exc:
            log.exception("backend failed")
            return self._error(common, events.ErrorKind.BACKEND, f"{type(exc).__name__}: {exc}")
        finally:
            if stream is not None:
                await stream.close()
        generation_ms = (time.perf_counter() - started) * 1000
        text = (
            strip_markers(output.text) if request.strategy is events.Strategy.DRPO else output.text
        )
        TOKENS.labels(self.backend.name).inc(output.completion_tokens)
        if output.ttft_ms is not None:
            TTFT.observe(output.ttft_ms / 1000)
        if generation_ms > 0:
            TOKENS_PER_S.observe(output.completion_tokens / (generation_ms / 1000))
        return events.ChatResponse(
            **common,
            text=text,
            cited_rules=tuple(rule.ref for rule in prompt.cited),
            finish_reason=output.finish_reason,
            option_logprobs=output.option_logprobs,
            usage=events.Usage(
                prompt_tokens=output.prompt_tokens, completion_tokens=output.completion_tokens
            ),
            timings=events.Timings(
                retrieval_ms=grounded.retrieval_ms,
                ttft_ms=output.ttft_ms,
                generation_ms=generation_ms,
                total_ms=(datetime.now(UTC) - request.created_at).total_seconds() * 1000,
            ),
        )

    def _token_stream(self, request: events.ChatRequest) -> TokenStream:
        topic = self.topics(CHAT_TOKENS)

        async def publish(token: events.ChatToken) -> None:
            # Pieces are a preview: a piece that cannot be published is counted and skipped,
            # the response (retried until published) is what completes the answer.
            try:
                await self.publish_all(topic, [token])
            except Exception:
                UNPUBLISHABLE.labels(self.name, "token").inc()
                log.warning("could not publish a token piece", exc_info=True,
                            extra={"request_id": token.request_id})  # fmt: skip

        return TokenStream(request, publish, self.settings.stream_interval_s)

    def _error(
        self, common: dict[str, Any], kind: events.ErrorKind, message: str
    ) -> events.ChatResponse:
        ERRORS.labels(kind.value).inc()
        return events.ChatResponse(
            **common, ok=False, error=events.ErrorInfo(kind=kind, message=message[:2000])
        )


def _fields(request: events.ChatRequest, backend: GenerationBackend) -> dict[str, Any]:
    """The fields every response to ``request`` carries."""
    return {
        "request_id": request.request_id,
        "tenant": request.tenant,
        "strategy": request.strategy,
        "backend": backend.name,
        "model": backend.model,
        "metadata": request.metadata,
    }
