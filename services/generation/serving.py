"""Answering one grounded request: prompt -> backend -> a typed response, never an exception.

No transport here: the service hands a grounded request in and publishes what comes back
(token pieces go through ``publish_token``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span, StatusCode
from prometheus_client import Counter, Histogram

from services.generation.backends.base import (
    BackendError,
    CountsTokens,
    GenerationBackend,
    GenerationInput,
    GenerationOutput,
    HasTokenizer,
    ReportsHealth,
)
from services.generation.prompts import ChatPrompt, build_prompt
from services.generation.prompts.fencing import DEFAULT as DEFAULT_NEUTRALIZER
from services.generation.prompts.fencing import Neutralizer
from services.generation.settings import GenerationSettings
from services.generation.streaming import TokenStream
from shared import events
from shared.attribution import citations
from shared.memory.watermark import Watermark, covers
from shared.metrics import LATENCY_BUCKETS_S
from shared.prompt_sets import PromptSet
from shared.strategies import spec_of

log = logging.getLogger(__name__)

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

PublishToken = Callable[[events.ChatRequest, events.ChatToken], Awaitable[None]]
"""Publishes a piece of a request's answer (``ResponseDelivery.publish_token``)."""


@dataclass(frozen=True, slots=True)
class Answering:
    """What every response to one request carries; builds its answer or its error."""

    request: events.ChatRequest
    backend: str
    model: str
    searched_scope: events.SearchedScope | None = None
    memory_watermark: Watermark = field(default_factory=dict)

    def answer(
        self,
        prompt: ChatPrompt,
        output: GenerationOutput,
        *,
        retrieval_ms: float,
        generation_ms: float,
    ) -> events.ChatResponse:
        text = prompt.finish(output.text)
        return self._response(
            text=text,
            grounded_in=tuple(rule.ref for rule in prompt.cited),
            cited=citations(text, prompt.cited),
            finish_reason=output.finish_reason,
            option_logprobs=output.option_logprobs,
            usage=events.Usage(
                prompt_tokens=output.prompt_tokens, completion_tokens=output.completion_tokens
            ),
            timings=events.Timings(
                retrieval_ms=retrieval_ms,
                ttft_ms=output.ttft_ms,
                generation_ms=generation_ms,
                total_ms=(datetime.now(UTC) - self.request.created_at).total_seconds() * 1000,
            ),
        )

    def error(self, kind: events.ErrorKind, message: str) -> events.ChatResponse:
        ERRORS.labels(kind.value).inc()
        return self._response(ok=False, error=events.ErrorInfo(kind=kind, message=message[:2000]))

    def _response(self, **outcome: Any) -> events.ChatResponse:
        """A response to the request: its identity and echo, plus ``outcome`` (validated)."""
        request = self.request
        return events.ChatResponse(
            request_id=request.request_id,
            tenant=request.tenant,
            strategy=request.strategy,
            backend=self.backend,
            model=self.model,
            metadata=request.metadata,
            searched_scope=self.searched_scope,
            memory_watermark=self.memory_watermark,
            **outcome,
        )


class Serving:
    """The generation core: builds each prompt (with the deployed model's control markers and
    tokenizer once started) and runs it on the backend within the request timeout."""

    def __init__(
        self,
        backend: GenerationBackend,
        settings: GenerationSettings,
        publish_token: PublishToken,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.publish_token = publish_token
        self.drpo = (
            PromptSet.from_drpo_files(settings.drpo.system_prompt, settings.drpo.examples)
            if settings.drpo.system_prompt
            else None
        )
        self.neutralizer = DEFAULT_NEUTRALIZER
        """Removes control markers from untrusted prompt text (the model's own, once started)."""
        self._count_tokens: Callable[[str], int] | None = None
        """The model's tokenizer (OPO's budget), when the backend has it locally."""

    async def start(self) -> None:
        await self.backend.start()
        if isinstance(self.backend, HasTokenizer):
            # The deployed model's own markers, besides the known template families.
            self.neutralizer = Neutralizer(self.backend.control_tokens())
        if isinstance(self.backend, CountsTokens):
            self._count_tokens = self.backend.count_tokens

    async def close(self) -> None:
        await self.backend.close()

    def alive(self) -> bool:
        return not isinstance(self.backend, ReportsHealth) or self.backend.alive()

    def answering(self, request: events.ChatRequest) -> Answering:
        return Answering(request, self.backend.name, self.backend.model)

    async def respond(self, grounded: events.GroundedRequest) -> events.ChatResponse:
        """Generate the answer to one grounded request, or an error response."""
        request = grounded.request
        prompt = build_prompt(grounded, drpo_fallback=self.drpo, drpo_k=self.settings.drpo.k,
                              fence_rules=self.settings.fence_rules,
                              neutralizer=self.neutralizer,
                              count_tokens=self._count_tokens)  # fmt: skip
        answering = Answering(request, self.backend.name, self.backend.model,
                              grounded.searched_scope, grounded.memory_watermark)  # fmt: skip
        searched = spec_of(request.strategy).searches
        if searched and not covers(grounded.memory_watermark, request.min_watermark):
            # Never answer from a memory older than the client asked for (read-your-writes).
            return answering.error(events.ErrorKind.TIMEOUT, "the memory had not applied the "
                                   "rule log up to min_watermark in time; retry")  # fmt: skip
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
                        joined=prompt.joined,
                    )
                ),
                timeout=self.settings.request_timeout_s,
            )
        except TimeoutError:
            return answering.error(events.ErrorKind.TIMEOUT, "generation timed out")
        except BackendError as exc:
            return answering.error(events.ErrorKind.BACKEND, str(exc))
        except Exception as exc:
            log.exception("backend failed")
            return answering.error(events.ErrorKind.BACKEND, f"{type(exc).__name__}: {exc}")
        finally:
            if stream is not None:
                await stream.close()
        generation_ms = (time.perf_counter() - started) * 1000
        TOKENS.labels(self.backend.name).inc(output.completion_tokens)
        if output.ttft_ms is not None:
            TTFT.observe(output.ttft_ms / 1000)
        if generation_ms > 0:
            TOKENS_PER_S.observe(output.completion_tokens / (generation_ms / 1000))
        return answering.answer(prompt, output, retrieval_ms=grounded.retrieval_ms,
                                generation_ms=generation_ms)  # fmt: skip

    def _token_stream(self, request: events.ChatRequest) -> TokenStream:
        return TokenStream(request, functools.partial(self.publish_token, request),
                           self.settings.stream_interval_s)  # fmt: skip


def traced_response(span: Span, response: events.ChatResponse) -> None:
    """What a request's generation span records: time to first token, tokens, the outcome."""
    if response.timings.ttft_ms is not None:
        span.set_attribute("alignstream.ttft_ms", response.timings.ttft_ms)
    span.set_attribute("alignstream.generation_ms", response.timings.generation_ms)
    span.set_attribute("alignstream.completion_tokens", response.usage.completion_tokens)
    span.set_attribute("alignstream.grounded_in",
                       [f"{r.rule_id}@{r.version}" for r in response.grounded_in])  # fmt: skip
    span.set_attribute("alignstream.cited", [f"{c.rule_id}@{c.version}" for c in response.cited])
    if response.error is not None:
        span.set_status(StatusCode.ERROR, response.error.kind.value)
