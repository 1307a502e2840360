"""Chat completions over the pipeline: an HTTP request becomes a ``ChatRequest`` on
``chat.requests`` naming this instance's reply topic; its answer (and, streaming, its pieces)
comes back there. No transport here: the routes hand a verified key and a parsed body in.

Bounded: requests open per instance, tenant and key (``OpenRequests``: 429 beyond), each
answered within ``request_timeout_s`` of its arrival (504 after). A stream whose client leaves,
and a request that times out, is cancelled downstream (``Canceller``: generation aborts it and
frees its slot); an answer that still arrives is counted, not delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from services.gateway.capacity import OpenRequests
from services.gateway.errors import ApiError, from_pipeline, timed_out
from services.gateway.metrics import CANCELS, OUTCOMES
from services.gateway.protocol import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from services.gateway.replies import ReplyWaiters
from services.gateway.translate import Chunks, Defaults, to_chat_request, to_completion
from shared import events
from shared.tenants import ApiKey

log = logging.getLogger(__name__)

Send = Callable[[events.ChatRequest], Awaitable[None]]
SendCancel = Callable[[events.ChatCancel], Awaitable[None]]
StreamItem = ChatCompletionChunk | ApiError
"""A chunk, or the error that ends a stream already begun (sent as an ``error`` event)."""


class Canceller:
    """Publishes a request's cancel without holding its caller: it is sent from clean-up code
    (a dropped stream's ``finally``, where an await would be cancelled again)."""

    def __init__(self, send: SendCancel) -> None:
        self.send = send
        self._sending: set[asyncio.Task[None]] = set()

    def cancel(self, request: events.ChatRequest, reason: events.CancelReason) -> None:
        cancel = events.ChatCancel(tenant=request.tenant, request_id=request.request_id,
                                   reason=reason)  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._send(cancel))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, cancel: events.ChatCancel) -> None:
        try:
            await self.send(cancel)
            CANCELS.labels(cancel.reason.value).inc()
        except Exception:  # the request then runs to its end: costly, never wrong
            CANCELS.labels("failed").inc()
            log.warning("could not publish a cancel", exc_info=True,
                        extra={"request_id": cancel.request_id})  # fmt: skip

    async def drain(self) -> None:
        """Wait for the cancels being sent (before the producer stops)."""
        if self._sending:
            await asyncio.wait(set(self._sending))


class ChatCompletions:
    def __init__(
        self,
        send: Send,
        waiters: ReplyWaiters,
        *,
        reply_topic: str,
        defaults: Defaults,
        open_requests: OpenRequests,
        canceller: Canceller,
        request_timeout_s: float,
    ) -> None:
        self.send = send
        self.waiters = waiters
        self.reply_topic = reply_topic
        self.defaults = defaults
        self.open = open_requests
        self.canceller = canceller
        self.request_timeout_s = request_timeout_s

    def _request(self, key: ApiKey, body: ChatCompletionRequest) -> events.ChatRequest:
        return to_chat_request(body, key, reply_topic=self.reply_topic, defaults=self.defaults)

    def _remaining(self, arrived: float) -> float:
        return max(0.0, arrived + self.request_timeout_s - time.perf_counter())

    async def complete(
        self, key: ApiKey, body: ChatCompletionRequest, *, arrived: float
    ) -> ChatCompletion:
        """The answer as one completion; ``ApiError`` for a refused, failed or late one."""
        request = self._request(key, body.model_copy(update={"stream": False}))
        with self.open.admitted(key), self.waiters.waiting(request) as waiter:
            await self.send(request)
            try:
                response = await asyncio.wait_for(waiter.response(), self._remaining(arrived))
            except TimeoutError:
                OUTCOMES.labels("chat", "timeout").inc()
                self.canceller.cancel(request, events.CancelReason.TIMED_OUT)
                raise timed_out(self.request_timeout_s) from None
            except asyncio.CancelledError:
                self.canceller.cancel(request, events.CancelReason.CLIENT_LEFT)
                raise
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
        with self.open.admitted(key), self.waiters.waiting(request) as waiter:
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
                            raise timed_out(self.request_timeout_s) from None
                        yield timed_out(self.request_timeout_s)
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
                if outcome is None:
                    self.canceller.cancel(request, events.CancelReason.CLIENT_LEFT)
                elif outcome == "timeout":
                    self.canceller.cancel(request, events.CancelReason.TIMED_OUT)
