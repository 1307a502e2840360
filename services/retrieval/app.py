"""The retrieval service: chat requests -> rules that apply -> the generation topic."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter

from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.cache import Refreshing
from shared.dlq import Inbox
from shared.embedders import Embedder, make_embedder
from shared.embedders.base import Vectors
from shared.guards import reply_topic_guard
from shared.kafka import OversizedMessage, consumer_options
from shared.memory.retriever import RuleRetriever
from shared.memory.service import RuleMemoryService
from shared.memory.trees import JurisdictionStore
from shared.metrics import HANDLER_SECONDS, LATENCY_BUCKETS_S, UNPUBLISHABLE
from shared.prompt_sets import PromptSetStore, StoredPromptSet
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS, CHAT_RESPONSES

log = logging.getLogger(__name__)

SEARCH_SECONDS = Histogram(
    "alignstream_retrieval_search_seconds",
    "Time of one KNN search in Redis.",
    buckets=LATENCY_BUCKETS_S,
)
RETRIEVAL_SECONDS = Histogram(
    "alignstream_retrieval_seconds",
    "Time to ground one request: embed share, search, order, budget.",
    buckets=LATENCY_BUCKETS_S,
)
HITS = Histogram(
    "alignstream_retrieval_rules_returned",
    "Rules attached to a request after filtering and budget.",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 50),
)

UNRESOLVED = Counter(
    "alignstream_retrieval_unresolved_jurisdictions_total",
    "Jurisdiction names in requests that matched no node of the tenant's tree (or several).",
)
SCOPES = Counter(
    "alignstream_retrieval_scopes_total",
    "Searches by where their jurisdiction scope came from (request, question, default, ...).",
    ["source"],
)

OPO_BUDGET_SLACK = 2
"""With ``protocol="opo"``: rules packed up to this many times the request's budget."""

EMBEDDED = (events.Strategy.OPO, events.Strategy.DRPO)
"""Strategies whose question is embedded: to search rules (OPO), to pick examples (DRPO)."""

ChatRequestAdapter: TypeAdapter[events.ChatRequest] = TypeAdapter(events.ChatRequest)


class RetrievalService(RuleMemoryService):
    name = "retrieval"
    metrics = (SEARCH_SECONDS, RETRIEVAL_SECONDS, HITS, UNRESOLVED, SCOPES)

    def __init__(self, settings: RetrievalSettings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder or make_embedder(settings.embedder))
        self.settings: RetrievalSettings = settings
        self.inbox: Inbox[events.ChatRequest] = self.make_inbox(
            CHAT_REQUESTS, ChatRequestAdapter, checks=[reply_topic_guard(self.topics)]
        )
        self.retriever: RuleRetriever | None = None
        self._memory_checked = True
        """False after a Redis failure until the memory is loaded and indexed again."""
        self.prompt_sets: PromptSetStore | None = None
        self._prompt_sets: Refreshing[tuple[str, str], StoredPromptSet | None] = Refreshing(
            self._read_prompt_set, settings.prompt_sets_refresh_s
        )
        self.broker.subscriber(
            self.topics(CHAT_REQUESTS),
            batch=True,
            max_records=settings.batch_max,
            batch_timeout_ms=settings.batch_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            **consumer_options(settings.kafka, group_id=settings.group_id),
        )(self.on_chat_requests)

    @classmethod
    def from_env(cls) -> RetrievalService:
        return cls(RetrievalSettings())

    async def on_start(self) -> None:
        await super().on_start()
        assert self.indexes is not None
        settings = self.settings
        client, schema = self.indexes.client, self.indexes.schema
        searcher = settings.searcher(client, schema)
        trees = JurisdictionStore(client, settings.redis.key_prefix)
        self.retriever = RuleRetriever(searcher, trees, settings.retrieval_options())
        self.prompt_sets = PromptSetStore(self.indexes.client, self.settings.redis.key_prefix)

    async def on_chat_requests(self, message: KafkaMessage) -> None:
        received_at = datetime.now(UTC)
        with HANDLER_SECONDS.labels(self.name, CHAT_REQUESTS.name).time():
            opened = await self.inbox.open_batch(message.raw_message)
            if not opened:
                return
            try:
                await self.memory_ready()
                grounded = await self.ground([request for _, request in opened], received_at)
            except Exception:
                # Redis (or the embedder) failed. Redis may be restarting: before searching
                # again, wait until it has loaded and every index is complete, so no request is
                # grounded from a half-loaded index. The batch is redelivered after a pause.
                self._memory_checked = False
                await asyncio.sleep(self.settings.retry_backoff_s)
                raise
            await self.publish_grounded(grounded)

    async def publish_grounded(self, grounded: list[events.GroundedRequest]) -> None:
        """Publish grounded requests; one too large to publish (many long rules) is answered
        at once with an error response on its reply topic instead, so nothing stalls."""
        bodies: list[tuple[str, bytes]] = []
        for item in grounded:
            try:
                bodies.append((item.key, self.encode_bounded(item)))
            except OversizedMessage as exc:
                UNPUBLISHABLE.labels(self.name, "grounded_request").inc()
                response = oversized_response(item, exc)
                topic = item.request.reply_topic or self.topics(CHAT_RESPONSES)
                await self.publish_all(topic, [response])
        await self.publish_bodies(self.topics(CHAT_GROUNDED), bodies)

    async def memory_ready(self) -> None:
        """Wait for the rule memory after a failure (a no-op while all is well)."""
        if not self._memory_checked:
            assert self.indexes is not None, "service not started"
            await self.indexes.wait_ready(timeout_s=self.settings.memory_ready_timeout_s)
            self._memory_checked = True

    async def is_ready(self) -> bool:
        return await super().is_ready() and self._memory_checked

    async def ground(
        self, requests: list[events.ChatRequest], received_at: datetime
    ) -> list[events.GroundedRequest]:
        """Attach rules to each request: searched (OPO), given (oracle) or none; and to DRPO
        requests their prompt set's examples most similar to the question."""
        started = time.perf_counter()
        embedding = [r for r in requests if r.strategy in EMBEDDED]
        embedded = await self.embedder.embed([r.query for r in embedding])
        vectors = dict(zip((r.request_id for r in embedding), embedded, strict=True))
        searching = [r for r in embedding if r.strategy.needs_retrieval]
        found = dict(
            zip(
                (r.request_id for r in searching),
                await asyncio.gather(
                    *(self.search(r, vectors[r.request_id].tobytes()) for r in searching)
                ),
                strict=True,
            )
        )
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        grounded = []
        for request in requests:
            carried = request
            if request.strategy is events.Strategy.ORACLE:
                # The rules travel once, as the grounded rules (not again inside the request).
                rules = request.oracle_rules
                carried = request.model_copy(update={"oracle_rules": ()})
                scope = None
            elif request.request_id in found:
                rules, scope = found[request.request_id]
            else:
                rules, scope = (), None
            HITS.observe(len(rules))
            system: str | None = None
            examples: tuple[events.IclExample, ...] = ()
            if request.strategy is events.Strategy.DRPO:
                system, examples = await self.drpo_examples(request, vectors[request.request_id])
            grounded.append(
                events.GroundedRequest(
                    request=carried,
                    rules=rules,
                    searched_scope=scope,
                    system_prompt=system,
                    examples=examples,
                    retrieval_ms=elapsed_ms if request.strategy in EMBEDDED else 0.0,
                    received_at=received_at,
                )
            )
        RETRIEVAL_SECONDS.observe(elapsed_ms / 1000.0)
        return grounded

    async def search(
        self, request: events.ChatRequest, vector: bytes
    ) -> tuple[tuple[events.RetrievedRule, ...], events.SearchedScope]:
        assert self.retriever is not None, "service not started"
        scope = request.scope
        if request.protocol == "opo":
            # Generation applies OPO's budget with the model's own tokenizer: send it enough
            # to choose from (the estimate here may count fewer tokens than the model does).
            budget = min(scope.token_budget * OPO_BUDGET_SLACK, 32_000)
            scope = scope.model_copy(update={"token_budget": budget})
        with SEARCH_SECONDS.time():
            found = await self.retriever.retrieve(
                request.tenant,
                scope,
                request.query,
                vector,
                today=datetime.now(UTC).date(),
            )
        SCOPES.labels(found.scope.source).inc()
        if found.scope.unresolved:
            UNRESOLVED.inc(len(found.scope.unresolved))
        return found.rules, found.scope

    async def drpo_examples(
        self, request: events.ChatRequest, vector: Vectors
    ) -> tuple[str | None, tuple[events.IclExample, ...]]:
        """The request's DRPO system prompt and its ``k`` nearest examples; (None, ()) when the
        set is not in Redis (generation then uses its own set)."""
        name = request.prompt_set or self.settings.drpo_prompt_set
        stored = await self.prompt_set(request.tenant, name)
        if stored is None:
            return None, ()
        k = self.settings.drpo_k if request.examples_k is None else request.examples_k
        if stored.embedder != self.embedder.name:
            # Vectors of another model are not comparable: fall back to the set's order.
            log.warning("prompt set embedded by another model", extra={"prompt_set": name})
            return stored.prompt_set.system, stored.prompt_set.examples[:k]
        return stored.prompt_set.system, stored.nearest(vector, k)

    async def prompt_set(self, tenant: str, name: str) -> StoredPromptSet | None:
        """The tenant's prompt set of that name, else the shared one (never another tenant's),
        cached for ``prompt_sets_refresh_s``."""
        return await self._prompt_sets.get((tenant, name))

    async def _read_prompt_set(self, tenant_and_name: tuple[str, str]) -> StoredPromptSet | None:
        assert self.prompt_sets is not None, "service not started"
        return await self.prompt_sets.get_for(*tenant_and_name)


def oversized_response(
    grounded: events.GroundedRequest, exc: OversizedMessage
) -> events.ChatResponse:
    """The error answer to a request whose grounded form is too large to publish."""
    request = grounded.request
    message = (f"the grounded request would be {exc.size} bytes, over the {exc.limit}-byte "
               "message limit; narrow the scope or lower top_k / token_budget")  # fmt: skip
    return events.ChatResponse(
        request_id=request.request_id,
        tenant=request.tenant,
        strategy=request.strategy,
        ok=False,
        error=events.ErrorInfo(kind=events.ErrorKind.INVALID_REQUEST, message=message),
        metadata=request.metadata,
    )
