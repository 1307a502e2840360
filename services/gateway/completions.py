"""Chat completions over the pipeline: an HTTP request becomes a ``ChatRequest`` on
``chat.requests`` naming this instance's reply topic; its answer (and, streaming, its pieces)
comes back there. No transport here: the routes hand a verified key and a parsed body in.

Bounded: at most ``max_in_flight`` requests open (429 beyond), each answered within
``request_timeout_s`` of its arrival (504 after). A client that leaves cancels nothing
downstream; its answer arrives unclaimed and is counted, not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from services.gateway.errors import ApiError, from_pipeline, rate_limited, timed_out
from services.gateway.metrics import IN_FLIGHT, OUTCOMES
from services.gateway.protocol import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from services.gateway.replies import ReplyWaiters
from services.gateway.translate import Chunks, Defaults, to_chat_request, to_completion
from shared import events
from shared.tenants import ApiKey

Send = Callable[[events.ChatRequest], Awaitable[None]]
StreamItem = ChatCompletionChunk | ApiError
"""A chunk, or the error that ends a stream already begun (sent as an ``error`` event)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight: int
    request_timeout_s: float


class ChatCompletions:
    def __init__(
        self,
        send: Send,
        waiters: ReplyWaiters,
        *,
        reply_topic: str,
        defaults: Defaults,
        limits: Limits,
    ) -> None:
        self.send = send
        self.waiters = waiters
        self.reply_topic = reply_topic
        self.defaults = defaults
        self.limits = limits
        self.open = 0

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        if self.open >= self.limits.max_in_flight:
            raise rate_limited(1.0, f"This gateway instance has {self.open} requests open, "
                                    "its limit; retry shortly.")  # fmt: skip
        self.open += 1
        IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.open -= 1
            IN_FLIGHT.dec()

    def _request(self, key: ApiKey, body: ChatCompletionRequest) -> events.ChatRequest:
        return to_chat_request(body, key, reply_topic=self.reply_topic, defaults=self.defaults)

    def _remaining(self, arrived: float) -> float:
        return max(0.0, arrived + self.limits.request_timeout_s - time.perf_counter())

    async def complete(
        self, key: ApiKey, body: ChatCompletionRequest, *, arrived: float
    ) -> ChatCompletion:
        """The answer as one completion; ``ApiError`` for a refused, failed or late one."""
        request = self._request(key, body.model_copy(update={"stream": False}))
        with self._admitted(), self.waiters.waiting(request) as waiter:
            await self.send(request)
            try:
                response = await asyncio.wait_for(waiter.response(), self._remaining(arrived))
            except TimeoutError:
                OUTCOMES.labels("chat", "timeout").inc()
                raise timed_out(self.limits.request_timeout_s) from None
        if not response.ok:
            assert response.error is not None
            OUTCOMES.labels("chat", "pipeline_error").inc()
            raise from_pipeline(response.error.kind, response.error.message)
        OUTCOMES.labels("chat", "ok").inc()
        return to_completion(response, model=body.model, created=int(time.time()),
                             gateway_ms=(time.perf_counter() - arrived) * 1000)  # fmt: skip

    async def stream(
        self, key: ApiKey, body: ChatCompletionRequest, *, arrived: float
    ) -> AsyncGenerator[StreamItem]:
        """The answer as chunks. Nothing is yielded before the first reply arrives, so a
        refusal, a pipeline error or a timeout before any text is still a plain HTTP error
        (``ApiError`` raised); once text has flowed, one ends the stream as an error item."""
        request = self._request(key, body)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = Chunks(request.request_id, body.model, int(time.time()))
        outcome: str | None = None
        with self._admitted(), self.waiters.waiting(request) as waiter:
            try:
                await self.send(request)
                replies = waiter.stream()
                streamed: list[str] = []
                began = False
                while True:
                    try:
                        item = await asyncio.wait_for(anext(replies), self._remaining(arrived))
                    except TimeoutError:
                        outcome = "timeout"
                        if not began:
                            raise timed_out(self.limits.request_timeout_s) from None
                        yield timed_out(self.limits.request_timeout_s)
                        return
                    if isinstance(item, events.ChatResponse):
                        break
                    if not began:
                        began = True
                        yield chunks.opening()
                    streamed.append(item)
                    if item:
                        yield chunks.text(item)
                response = item
                if not response.ok:
                    assert response.error is not None
                    outcome = "pipeline_error"
                    error = from_pipeline(response.error.kind, response.error.message)
                    if not began:
                        raise error
                    yield error
                    return
                if not began:
                    yield chunks.opening()
                text = "".join(streamed)
                if len(response.text) > len(text) and response.text.startswith(text):
                    yield chunks.text(response.text[len(text) :])  # pieces the broker lost
                gateway_ms = (time.perf_counter() - arrived) * 1000
                for chunk in chunks.closing(response, gateway_ms=gateway_ms,
                                            include_usage=include_usage):  # fmt: skip
                    yield chunk
                outcome = "ok"
            finally:
                # No outcome: the client left before the end (its answer is not delivered).
                OUTCOMES.labels("chat_stream", outcome or "disconnected").inc()
