"""The rules API and the check endpoint; no transport here.

Writes are rule events on ``rules.events`` (signed, keyed by rule: Kafka stays the source of
truth) for the key's tenant only; reads come from the memory. ``applicable`` searches the
memory exactly as retrieval grounds a question (same retriever, same embedder), so another
gateway can ask which rules apply without generating.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from services.gateway.confirmations import Confirmations
from services.gateway.errors import ApiError, invalid, timed_out
from services.gateway.key_scope import searched_scope
from services.gateway.metrics import RULE_CHANGES
from services.gateway.protocol import (
    ApplicableRequest,
    ApplicableRule,
    ApplicableRules,
    RuleBody,
    RuleChange,
    RuleList,
    RuleView,
)
from shared import events
from shared.embedders import Embedder
from shared.fairness import FairSlots
from shared.memory.query import RuleSelection
from shared.memory.reader import RuleReader, StoredRule
from shared.memory.retriever import RuleRetriever
from shared.memory.watermark import Watermark
from shared.tenants import ApiKey

EMBEDDING_SLOTS = 2
"""Check texts in the embedder at once (one per tenant): the embedder works through one call
at a time, so more would only queue inside it, where no one is fair."""
PublishRule = Callable[[events.RuleEvent], Awaitable[Watermark]]
"""Publishes a rule event; returns where it landed in the rule log."""
RULE_ID: TypeAdapter[str] = TypeAdapter(events.Identifier)


MAX_OFFSET = 10_000_000


def publisher_of(key: ApiKey) -> str:
    """How the gateway names who published an edit: the key that made it."""
    return f"gateway:key:{key.key_id}"


def checked_rule_id(rule_id: str) -> str:
    try:
        return RULE_ID.validate_python(rule_id)
    except ValidationError:
        raise ApiError(400, "rule_id: letters, digits, '_', '.', ':' and '-', at most 128.",
                       param="rule_id") from None  # fmt: skip


def not_found(rule_id: str) -> ApiError:
    return ApiError(404, f"No rule {rule_id!r} in this tenant's memory.", code="rule_not_found")


def _view(rule: StoredRule) -> RuleView:
    return RuleView(rule_id=rule.rule_id, version=rule.version, title=rule.title, text=rule.text,
                    domain=rule.domain, jurisdiction=rule.jurisdiction, locale=rule.locale,
                    status=rule.status, tags=list(rule.tags), priority=rule.priority,
                    effective_from=rule.effective_from, effective_until=rule.effective_until,
                    source=rule.source)  # fmt: skip


class RulesApi:
    def __init__(
        self,
        publish: PublishRule,
        confirmations: Confirmations,
        reader: RuleReader,
        *,
        wait_timeout_s: float,
    ) -> None:
        self.publish = publish
        self.confirmations = confirmations
        self.reader = reader
        self.wait_timeout_s = wait_timeout_s

    async def put(self, key: ApiKey, rule_id: str, body: RuleBody, *, wait: bool) -> RuleChange:
        rule_id = checked_rule_id(rule_id)
        version = body.version or abs(await self.reader.version(key.tenant, rule_id)) + 1
        fields = body.model_dump(exclude={"version"})
        try:
            rule = events.Rule(tenant=key.tenant, rule_id=rule_id, version=version, **fields)
        except ValidationError as exc:
            raise invalid(exc.errors()) from None
        return await self.change(events.RuleUpsert(rule=rule, publisher=publisher_of(key)),
                                 wait=wait)  # fmt: skip

    async def delete(
        self, key: ApiKey, rule_id: str, *, version: int | None, wait: bool
    ) -> RuleChange:
        rule_id = checked_rule_id(rule_id)
        if version is None:
            current = await self.reader.version(key.tenant, rule_id)
            if current <= 0:
                raise not_found(rule_id)
            version = current + 1
        try:  # one above MAX_RULE_VERSION is refused like a bad body, not a 500
            event = events.RuleDelete(tenant=key.tenant, rule_id=rule_id, version=version,
                                      publisher=publisher_of(key))  # fmt: skip
        except ValidationError as exc:
            raise invalid(exc.errors()) from None
        return await self.change(event, wait=wait)

    async def change(self, event: events.RuleEvent, *, wait: bool) -> RuleChange:
        """Publish a rule event; with ``wait``, its confirmation's outcome (504 past the
        gateway's wait)."""
        target = event.target
        change = RuleChange(rule_id=target.rule_id, version=target.version, op=event.op,
                            event_id=event.event_id, outcome="published")  # fmt: skip
        RULE_CHANGES.labels(event.op).inc()
        if not wait:
            landed = await self.publish(event)
            return change.model_copy(update={"watermark": landed})
        async with self.confirmations.waiting(event.event_id) as confirmed:
            landed = await self.publish(event)
            try:
                indexed = await asyncio.wait_for(confirmed, self.wait_timeout_s)
            except TimeoutError:
                raise timed_out(self.wait_timeout_s) from None
        return change.model_copy(update={"outcome": indexed.outcome.value,
                                         "latency_ms": indexed.latency_ms,
                                         "watermark": landed})  # fmt: skip

    async def get(self, key: ApiKey, rule_id: str) -> RuleView:
        rule_id = checked_rule_id(rule_id)
        rule = await self.reader.get(key.tenant, rule_id)
        if rule is None:
            raise not_found(rule_id)
        return _view(rule)

    async def page(
        self, key: ApiKey, selection: RuleSelection, *, cursor: str | None, limit: int
    ) -> RuleList:
        """The rules ``selection`` picks, in rule id order, ``limit`` from ``cursor``."""
        try:
            offset = int(cursor or 0)
        except ValueError:
            offset = -1
        if not 0 <= offset <= MAX_OFFSET:
            raise ApiError(400, "cursor: pass next_cursor of the previous page.", param="cursor")
        flt = selection.filter(key.tenant)
        rules, total = await self.reader.select(flt, offset=offset, limit=limit)
        after = offset + len(rules)
        return RuleList(data=[_view(r) for r in rules],
                        next_cursor=str(after) if after < total else None)  # fmt: skip


class ApplicableCheck:
    """Searches as retrieval would for a request's text. The embedder is one per process and
    shared by every tenant: a tenant has at most one text in it at a time (``FairSlots``), and
    each text is cut as retrieval cuts a question (``events.search_text``)."""

    def __init__(
        self, embedder: Embedder, retriever: RuleRetriever, *, min_score: float | None = None
    ) -> None:
        self.embedder = embedder
        self.retriever = retriever
        self.min_score = min_score
        """The threshold of a request that names none."""
        self.embedding = FairSlots(EMBEDDING_SLOTS, per_tenant=1)

    async def applicable(self, key: ApiKey, body: ApplicableRequest) -> ApplicableRules:
        started = time.perf_counter()
        jurisdictions, any_jurisdiction = searched_scope(key, body.jurisdictions,
                                                         body.any_jurisdiction)  # fmt: skip
        scope = events.RuleScope(
            jurisdictions=jurisdictions,
            any_jurisdiction=any_jurisdiction, domains=tuple(body.domains),
            locales=tuple(body.locales), as_of=body.as_of, top_k=body.top_k,
            token_budget=body.token_budget,
            min_score=self.min_score if body.min_score is None else body.min_score,
        )  # fmt: skip
        text = events.search_text(body.text)
        async with self.embedding.slot(key.tenant):
            (vector,) = await self.embedder.embed([text])
        today = datetime.now(UTC).date()
        found = await self.retriever.retrieve(key.tenant, scope, text, vector.tobytes(),
                                              today=today)  # fmt: skip
        rules = [ApplicableRule(rule_id=r.rule_id, version=r.version, score=r.score,
                                title=r.title, text=r.text, domain=r.domain.value,
                                jurisdiction=r.jurisdiction, priority=r.priority,
                                vector_rank=r.vector_rank, lexical_rank=r.lexical_rank)
                 for r in found.rules]  # fmt: skip
        return ApplicableRules(data=rules, searched_scope=found.scope, as_of=body.as_of or today,
                               search_ms=(time.perf_counter() - started) * 1000)  # fmt: skip
