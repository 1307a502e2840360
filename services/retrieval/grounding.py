"""Grounding chat requests: what each strategy needs attached before generation.

Per ``shared.strategies``: the question is embedded once (to search rules, or to pick a prompt
set's examples), the tenant's memory searched under the request's scope (OPO), the request's
own rules carried (oracle), a prompt set's system prompt and nearest examples attached (DRPO).
No transport here: the service hands a batch in and publishes what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from opentelemetry.trace import Span
from prometheus_client import Counter, Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.cache import Refreshing
from shared.embedders import Embedder
from shared.embedders.base import Vectors
from shared.kafka import OversizedMessage
from shared.memory.retriever import RuleRetriever
from shared.memory.watermark import MemoryWatermark, Watermark, covers
from shared.metrics import LATENCY_BUCKETS_S
from shared.prompt_sets import PromptSetStore, StoredPromptSet
from shared.strategies import RulesFrom, spec_of

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
SEARCH_RETRIES = Counter(
    "alignstream_retrieval_search_retries_total",
    "Searches retried alone after a Redis connection error or time-out (the batch went on).",
)
SCOPES = Counter(
    "alignstream_retrieval_scopes_total",
    "Searches by where their jurisdiction scope came from (request, question, default, ...).",
    ["source"],
)

OPO_BUDGET_SLACK = 2
"""With ``protocol="opo"``: rules packed up to this many times the request's budget."""

Found = tuple[tuple[events.RetrievedRule, ...], events.SearchedScope | None, Watermark]


class Grounding:
    def __init__(
        self,
        embedder: Embedder,
        retriever: RuleRetriever,
        prompt_sets: PromptSetStore,
        settings: RetrievalSettings,
        watermark: MemoryWatermark | None = None,
    ) -> None:
        self.embedder = embedder
        self.watermark = watermark
        self.retriever = retriever
        self.prompt_sets = prompt_sets
        self.settings = settings
        self._searching = asyncio.Semaphore(settings.search_concurrency)
        self._prompt_sets: Refreshing[tuple[str, str], StoredPromptSet | None] = Refreshing(
            self._read_prompt_set, settings.prompt_sets_refresh_s
        )

    async def ground(
        self, requests: list[events.ChatRequest], received_at: datetime
    ) -> list[events.GroundedRequest]:
        """Attach to each request what its strategy needs (see the module's docstring)."""
        started = time.perf_counter()
        embedding = [r for r in requests if spec_of(r.strategy).embeds]
        embedded = await self.embedder.embed([r.query for r in embedding])
        vectors = dict(zip((r.request_id for r in embedding), embedded, strict=True))
        searching = [r for r in embedding if spec_of(r.strategy).searches]
        # Read before searching: the searches see at least this much of the rule log.
        applied = await self.watermark.read() if self.watermark and searching else {}
        found: dict[str, Found] = dict(
            zip(
                (r.request_id for r in searching),
                await asyncio.gather(
                    *(self.search(r, vectors[r.request_id].tobytes(), applied) for r in searching)
                ),
                strict=True,
            )
        )
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        grounded = []
        for request in requests:
            spec = spec_of(request.strategy)
            carried = request
            rules: tuple[events.RetrievedRule, ...] = ()
            scope: events.SearchedScope | None = None
            watermark: Watermark = {}
            if spec.rules is RulesFrom.REQUEST:
                # The rules travel once, as the grounded rules (not again inside the request).
                rules = request.oracle_rules
                carried = request.model_copy(update={"oracle_rules": ()})
            elif request.request_id in found:
                rules, scope, watermark = found[request.request_id]
            HITS.observe(len(rules))
            system: str | None = None
            examples: tuple[events.IclExample, ...] = ()
            if spec.uses_prompt_set:
                system, examples = await self.drpo_examples(request, vectors[request.request_id])
            grounded.append(
                events.GroundedRequest(
                    request=carried,
                    rules=rules,
                    searched_scope=scope,
                    memory_watermark=watermark,
                    system_prompt=system,
                    examples=examples,
                    retrieval_ms=elapsed_ms if spec.embeds else 0.0,
                    received_at=received_at,
                )
            )
        RETRIEVAL_SECONDS.observe(elapsed_ms / 1000.0)
        return grounded

    async def search(
        self, request: events.ChatRequest, vector: bytes, applied: Watermark | None = None
    ) -> Found:
        """One request's rules, and the watermark the memory had applied before the search
        (``applied``, read for the batch; a request asking for more waits for it, bounded); a
        Redis hiccup retries this search alone, not its batch."""
        applied = applied or {}
        wanted = request.min_watermark
        if wanted and self.watermark is not None and not covers(applied, wanted):
            applied, _ = await self.watermark.wait_for(
                wanted, timeout_s=self.settings.watermark_wait_s
            )
        attempts = self.settings.search_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with self._searching:
                    rules, scope = await self._search_once(request, vector)
                    return rules, scope, applied
            except (RedisConnectionError, RedisTimeoutError):
                if attempt == attempts:
                    raise
                SEARCH_RETRIES.inc()
                where = {"request_id": request.request_id, "attempt": attempt}
                log.warning("search failed; retrying it", exc_info=True, extra=where)
                await asyncio.sleep(self.settings.retry_backoff_s * attempt)
        raise AssertionError("unreachable")

    async def _search_once(
        self, request: events.ChatRequest, vector: bytes
    ) -> tuple[tuple[events.RetrievedRule, ...], events.SearchedScope]:
        scope = request.scope
        if events.is_opo(request.protocol):
            # Generation applies OPO's budget with the model's own tokenizer: send it enough
            # to choose from (the estimate here may count fewer tokens than the model does).
            budget = min(scope.token_budget * OPO_BUDGET_SLACK, 32_000)
            scope = scope.model_copy(update={"token_budget": budget})
        with SEARCH_SECONDS.time():
            retrieved = await self.retriever.retrieve(
                request.tenant,
                scope,
                request.query,
                vector,
                today=datetime.now(UTC).date(),
            )
        SCOPES.labels(retrieved.scope.source).inc()
        if retrieved.scope.unresolved:
            UNRESOLVED.inc(len(retrieved.scope.unresolved))
        return retrieved.rules, retrieved.scope

    async def drpo_examples(
        self, request: events.ChatRequest, vector: Vectors
    ) -> tuple[str | None, tuple[events.IclExample, ...]]:
        """The request's DRPO system prompt and its ``k`` nearest examples; (None, ()) when the
        set is not in Redis (generation then uses its own set)."""
        name = request.prompt_set or self.settings.drpo.prompt_set
        stored = await self.prompt_set(request.tenant, name)
        if stored is None:
            return None, ()
        k = self.settings.drpo.k if request.examples_k is None else request.examples_k
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


def traced_grounding(span: Span, grounded: events.GroundedRequest) -> None:
    """What a request's retrieval span records: the scope searched and the rule versions."""
    span.set_attribute("alignstream.retrieval_ms", grounded.retrieval_ms)
    span.set_attribute("alignstream.rules", [f"{r.rule_id}@{r.version}" for r in grounded.rules])
    if (scope := grounded.searched_scope) is not None:
        span.set_attribute("alignstream.scope.source", scope.source)
        span.set_attribute("alignstream.scope.searched", list(scope.searched))
        if scope.unresolved:
            span.set_attribute("alignstream.scope.unresolved", list(scope.unresolved))
