"""The retrieval service: chat requests -> ``Grounding`` -> the generation topic."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import TypeAdapter

from services.retrieval.grounding import (
    HITS,
    RETRIEVAL_SECONDS,
    SCOPES,
    SEARCH_RETRIES,
    SEARCH_SECONDS,
    UNRESOLVED,
    Grounding,
    oversized_response,
    traced_grounding,
)
from services.retrieval.ordering import lightest_tenant_first
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.embedders import Embedder, make_embedder
from shared.guards import reply_topic_guard
from shared.kafka import OversizedMessage
from shared.memory.retriever import RuleRetriever
from shared.memory.service import RuleMemoryService
from shared.memory.trees import JurisdictionStore
from shared.memory.watermark import MemoryWatermark
from shared.metrics import UNPUBLISHABLE
from shared.prompt_sets import PromptSetStore
from shared.subscription import Batch, Subscription
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS, CHAT_RESPONSES

ChatRequestAdapter: TypeAdapter[events.ChatRequest] = TypeAdapter(events.ChatRequest)


class RetrievalService(RuleMemoryService):
    name = "retrieval"
    settings_class = RetrievalSettings
    metrics = (SEARCH_SECONDS, SEARCH_RETRIES, RETRIEVAL_SECONDS, HITS, UNRESOLVED, SCOPES)

    def __init__(self, settings: RetrievalSettings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder or make_embedder(settings.embedder),
                         memory_ready_timeout_s=settings.memory_ready_timeout_s)  # fmt: skip
        self.settings: RetrievalSettings = settings
        self.grounding: Grounding | None = None
        self._memory_checked = True
        """False after a Redis failure until the memory is loaded and indexed again."""
        requests = Subscription(
            CHAT_REQUESTS,
            ChatRequestAdapter,
            max_records=settings.batch_max,
            batch_timeout_ms=settings.batch_wait_ms,
            checks=(reply_topic_guard(self.topics),),
            chat_path=True,
        )
        # Redis (or the embedder) failed. Redis may be restarting: before searching again,
        # wait until it has loaded and every index is complete, so no request is grounded
        # from a half-loaded index.
        self.inbox = self.subscribe(requests, self.on_chat_requests, on_failure=self._unchecked)
        self.publishes(CHAT_GROUNDED)
        self.publishes(CHAT_RESPONSES, why="error answers to requests too large to ground "
                                           "(to the request's reply topic)")  # fmt: skip

    @property
    def retriever(self) -> RuleRetriever | None:
        return self.grounding.retriever if self.grounding is not None else None

    async def on_start(self) -> None:
        await super().on_start()
        indexes = self.running_indexes()
        settings = self.settings
        client, schema = indexes.client, indexes.schema
        trees = JurisdictionStore(client, settings.redis.key_prefix)
        retriever = RuleRetriever(settings.searcher(client, schema), trees,
                                  settings.retrieval_options())  # fmt: skip
        prompt_sets = PromptSetStore(client, settings.redis.key_prefix)
        watermark = MemoryWatermark(client, settings.redis.key_prefix)
        self.grounding = Grounding(self.embedder, retriever, prompt_sets, settings, watermark)

    async def on_chat_requests(self, batch: Batch[events.ChatRequest]) -> None:
        received_at = datetime.now(UTC)
        opened = batch.opened
        if not opened:
            return
        await self.memory_ready()
        assert self.grounding is not None, "service not started"
        tracer = self.tracing.tracer
        spans = [tracer.start_span("retrieval.ground", context=self.tracing.continued(r.headers),
                                   attributes={"alignstream.tenant": request.tenant,
                                               "alignstream.strategy": request.strategy.value})
                 for r, request in opened]  # fmt: skip
        try:
            for group in lightest_tenant_first([request for _, request in opened]):
                grounded = await self.grounding.ground([opened[i][1] for i in group], received_at)
                for i, item in zip(group, grounded, strict=True):
                    traced_grounding(spans[i], item)
                headers = [self.tracing.headers(spans[i]) for i in group]
                await self.publish_grounded(grounded, headers)
        finally:
            for span in spans:
                span.end()

    def _unchecked(self) -> None:
        self._memory_checked = False

    async def publish_grounded(
        self, grounded: list[events.GroundedRequest], headers: list[dict[str, str]]
    ) -> None:
        """Publish grounded requests (each with its trace headers); one too large to publish
        (many long rules) is answered at once with an error response on its reply topic
        instead, so nothing stalls."""
        bodies: list[tuple[str, bytes]] = []
        kept: list[dict[str, str]] = []
        for item, extra in zip(grounded, headers, strict=True):
            try:
                bodies.append((item.key, self.encode_bounded(item)))
                kept.append(extra)
            except OversizedMessage as exc:
                UNPUBLISHABLE.labels(self.name, "grounded_request").inc()
                response = oversized_response(item, exc)
                topic = item.request.reply_topic or self.topics(CHAT_RESPONSES)
                await self.publish_bodies(topic, [(response.key, self.encode_bounded(response))],
                                          headers=[extra])  # fmt: skip
        await self.publish_bodies(self.topics(CHAT_GROUNDED), bodies, headers=kept)

    async def memory_ready(self) -> None:
        """Wait for the rule memory after a failure (a no-op while all is well)."""
        if not self._memory_checked:
            await self.running_indexes().wait_ready(timeout_s=self.settings.memory_ready_timeout_s)
            self._memory_checked = True

    async def is_ready(self) -> bool:
        return await super().is_ready() and self._memory_checked
