"""Searching the rule memory: KNN, full text, their fusion, ordering, token budget.

Everything but ``RuleSearcher``'s queries is pure and unit-tested without Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.events import GLOBAL_JURISDICTION, RetrievedRule, RuleDomain
from shared.memory.index import recreate_after_move
from shared.memory.lexical import (
    LEXICAL_FIELDS,
    MAX_DEPTH,
    bounded_terms,
    explain_terms,
    query_language,
    sanitized,
    text_query_args,
    words,
)
from shared.memory.query import RuleFilter, knn_query_args
from shared.memory.schema import RuleSchema
from shared.memory.settling import as_served
from shared.memory.term_stats import TermStats
from shared.redis import as_text, command, is_missing_index
from shared.tokens import HeuristicTokenCounter, TokenCounter

MIN_TRUNCATED_TOKENS = 32
"""A rule cut shorter than this is left out rather than sent as a fragment."""


@dataclass(frozen=True, slots=True)
class Hit:
    rule_id: str
    version: int
    similarity: float
    """Cosine similarity (1 = same direction)."""
    title: str
    text: str
    domain: RuleDomain
    jurisdiction: str
    priority: int
    vector_rank: int | None = None
    lexical_rank: int | None = None
    fused: float = 0.0
    """Reciprocal-rank fusion score (0: not fused)."""


def _fields(fields: object) -> dict[str, bytes]:
    assert isinstance(fields, list)
    return {
        name.decode(): value
        for name, value in zip(fields[::2], fields[1::2], strict=True)
        if isinstance(name, bytes) and isinstance(value, bytes)
    }


def parse_search_reply(reply: Sequence[object]) -> list[Hit]:
    """Parse a RESP2 FT.SEARCH reply: [total, key, [field, value, ...], key, [...], ...]."""
    hits: list[Hit] = []
    for rank, fields in enumerate(reply[2::2], start=1):
        raw = _fields(fields)
        hits.append(_hit(raw, 1.0 - float(raw["score"]), vector_rank=rank))
    return hits


def admitted_by_score(
    ranked: Sequence[object], members: Sequence[object], k: int
) -> list[tuple[bytes, float]]:
    """The k best keys of a full-text search (``lexical.TextQuery``): those of the ranked reply
    ([total, key, score, ...]) that the members reply ([total, key, ...]) admits, best BM25
    first; members the ranked reply did not reach follow in their own order (score 0)."""
    admitted = set(members[1:])
    scored = [(key, float(as_text(score))) for key, score in zip(ranked[1::2], ranked[2::2],
              strict=True) if key in admitted]  # fmt: skip
    seen = {key for key, _ in scored}
    rest = [(key, 0.0) for key in members[1:] if key not in seen]
    return [(key, score) for key, score in (*scored, *rest) if isinstance(key, bytes)][:k]


def text_hits(
    keys: Sequence[tuple[bytes, float]], rows: Sequence[Sequence[bytes | None]], query_vector: bytes
) -> list[Hit]:
    """Hits of the admitted keys from their fields (``LEXICAL_FIELDS``, as HMGET returns them;
    a document deleted meanwhile is left out); each hit's similarity is its cosine to the query.
    Equal BM25 scores (articles of one law share its name in their titles) go to the closer
    rule by cosine, not to the one ingest happened to write first."""
    query = np.frombuffer(query_vector, dtype=np.float32)
    scored: list[tuple[float, Hit]] = []
    for (_, score), values in zip(keys, rows, strict=True):
        raw = {f: v for f, v in zip(LEXICAL_FIELDS, values, strict=True) if v is not None}
        if "rule_id" not in raw or "version" not in raw:
            continue
        stored = np.frombuffer(raw.get("embedding", b""), dtype=np.float32)
        scored.append((score, _hit(raw, cosine(query, stored))))
    scored.sort(key=lambda pair: (-pair[0], -pair[1].similarity))
    return [replace(hit, lexical_rank=rank) for rank, (_, hit) in enumerate(scored, start=1)]


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    if a.shape != b.shape or not a.size:
        return 0.0
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm else 0.0


def _hit(
    raw: dict[str, bytes],
    similarity: float,
    *,
    vector_rank: int | None = None,
    lexical_rank: int | None = None,
) -> Hit:
    doc = {name: value.decode() for name, value in raw.items() if name != "embedding"}
    return Hit(
        rule_id=doc["rule_id"],
        version=int(doc["version"]),
        similarity=similarity,
        title=doc.get("title", ""),
        text=doc.get("text", ""),
        domain=RuleDomain(doc.get("domain", RuleDomain.OTHER.value)),
        jurisdiction=doc.get("jurisdiction_label") or doc.get("jurisdiction", GLOBAL_JURISDICTION),
        priority=int(doc.get("priority", 0)),
        vector_rank=vector_rank,
        lexical_rank=lexical_rank,
    )


@dataclass(frozen=True, slots=True)
class Fusion:
    """Reciprocal-rank fusion of the vector and the full-text rankings: a rule scores
    ``weight / (k + rank)`` in each list it appears in. ``k`` (60 in the RRF paper) flattens
    the head of each list."""

    k: int = 60
    vector_weight: float = 1.0
    lexical_weight: float = 1.0

    def fuse(self, vector: Sequence[Hit], lexical: Sequence[Hit]) -> list[Hit]:
        """Both rankings merged, best fused score first (each rule once, with both ranks)."""
        merged: dict[str, Hit] = {}
        for hit in (*vector, *lexical):
            known = merged.get(hit.rule_id)
            if known is None or hit.version > known.version:
                merged[hit.rule_id] = hit  # (a settling set's newer version replaces the old)
            elif hit.version == known.version:
                merged[hit.rule_id] = replace(
                    known,
                    vector_rank=known.vector_rank or hit.vector_rank,
                    lexical_rank=known.lexical_rank or hit.lexical_rank,
                )
        fused = [replace(h, fused=round(self.score(h), 9)) for h in merged.values()]
        return sorted(fused, key=lambda h: (-h.fused, -h.similarity, -h.priority, h.rule_id))

    def score(self, hit: Hit) -> float:
        total = 0.0
        if hit.vector_rank is not None:
            total += self.vector_weight / (self.k + hit.vector_rank)
        if hit.lexical_rank is not None:
            total += self.lexical_weight / (self.k + hit.lexical_rank)
        return total


def order_hits(hits: Iterable[Hit], *, min_score: float | None = None) -> list[Hit]:
    """Best fused score first (most similar first when not fused); higher priority breaks
    ties; a cosine similarity below ``min_score`` dropped; each rule once, at its newest
    version."""
    newest: dict[str, Hit] = {}
    for hit in hits:  # one version of a rule: the newest (two meet while a change set settles)
        if hit.rule_id not in newest or hit.version > newest[hit.rule_id].version:
            newest[hit.rule_id] = hit
    kept = [h for h in newest.values() if min_score is None or h.similarity >= min_score]
    return sorted(kept, key=lambda h: (-h.fused, -round(h.similarity, 6), -h.priority, h.rule_id))


def pack_to_budget(
    hits: Sequence[Hit],
    *,
    top_k: int,
    token_budget: int,
    counter: TokenCounter | None = None,
) -> list[RetrievedRule]:
    """Take hits in order while their texts fit the budget; the first that does not fit is cut
    to the remaining budget (as OPO truncates the concatenation) and ends the list."""
    counter = counter or HeuristicTokenCounter()
    rules: list[RetrievedRule] = []
    remaining = token_budget
    for hit in hits[:top_k]:
        text = hit.text
        tokens = counter.count(text)
        if tokens > remaining:
            if remaining < MIN_TRUNCATED_TOKENS:
                break
            text = counter.truncate(text, remaining)
            tokens = counter.count(text)
        rules.append(
            RetrievedRule(
                rule_id=hit.rule_id,
                version=hit.version,
                score=round(hit.similarity, 6),
                title=hit.title,
                text=text,
                domain=hit.domain,
                jurisdiction=hit.jurisdiction,
                priority=hit.priority,
                tokens=tokens,
                vector_rank=hit.vector_rank,
                lexical_rank=hit.lexical_rank,
            )
        )
        remaining -= tokens
        if text is not hit.text:
            break
    return rules


class RuleSearcher:
    """Runs vector, full-text and hybrid searches against a tenant's rule index."""

    def __init__(
        self,
        client: aioredis.Redis,
        schema: RuleSchema,
        *,
        ef_runtime: int,
        fusion: Fusion | None = None,
        stats: TermStats | None = None,
    ) -> None:
        self.client = client
        self.schema = schema
        self.ef_runtime = ef_runtime
        self.fusion = fusion or Fusion()
        self.stats = stats or TermStats(client, schema)

    async def search(self, vector: bytes, flt: RuleFilter, *, k: int) -> list[Hit]:
        """The k nearest rules within the filter (vector only)."""
        return await self._knn(vector, await as_served(self.client, self.schema, flt), k)

    async def text_search(self, query: str, vector: bytes, flt: RuleFilter, *, k: int) -> list[Hit]:
        """The k best BM25 matches of the question's terms within the filter (full text
        only); ``vector`` (the question's) gives each hit its cosine similarity."""
        return await self._bm25(query, vector, await as_served(self.client, self.schema, flt), k)

    async def hybrid(
        self, query: str, vector: bytes, flt: RuleFilter, *, k: int, lexical: bool = True
    ) -> list[Hit]:
        """Both searches at ``k`` candidates each, fused (vector only when not ``lexical``)."""
        served = await as_served(self.client, self.schema, flt)
        if not lexical:
            return await self._knn(vector, served, k)
        by_vector, by_text = await asyncio.gather(
            self._knn(vector, served, k), self._bm25(query, vector, served, k)
        )
        return self.fusion.fuse(by_vector, by_text)

    async def _knn(self, vector: bytes, flt: RuleFilter, k: int) -> list[Hit]:
        reply = await self._query(
            flt, *knn_query_args(flt, vector, k=k, ef_runtime=self.ef_runtime)
        )
        return parse_search_reply(reply) if reply else []

    async def _bm25(self, query: str, vector: bytes, flt: RuleFilter, k: int) -> list[Hit]:
        language = query_language(query)
        terms = await self.stats.selective(
            flt.tenant, await self.terms(query, flt.tenant), language
        )
        if not terms:
            return []
        text_query = text_query_args(flt, terms, k=k, language=language)
        ranked = await self._query(flt, *text_query.ranked())
        if not ranked or len(ranked) < 2:
            return []
        ranked_keys = [key for key in ranked[1::2] if isinstance(key, bytes)]
        members = await self._query(flt, *text_query.members_among(ranked_keys))
        keys = admitted_by_score(ranked, members or [0], k)
        if len(keys) < k and int(as_text(ranked[0])) > len(ranked_keys):  # the ranking was cut
            members, deeper = await asyncio.gather(
                self._query(flt, *text_query.members(MAX_DEPTH)),
                self._query(flt, *text_query.ranked(MAX_DEPTH)),
            )
            keys = admitted_by_score(deeper or [0], members or [0], k)
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (reads only)
        for key, _ in keys:
            pipe.hmget(key, list(LEXICAL_FIELDS))
        return text_hits(keys, await pipe.execute(), vector)

    async def terms(self, query: str, tenant: str) -> list[str]:
        """The question's terms as the tenant's index tokenized its rules (``lexical.py``)."""
        text = sanitized(query)
        if not text:
            return []
        if query_language(text) != "chinese":
            return bounded_terms(words(text))
        try:
            explained = await command(
                self.client, "FT.EXPLAIN", self.schema.index_name(tenant), text,
                "LANGUAGE", "chinese", "DIALECT", 2,
            )  # fmt: skip
        except ResponseError as exc:
            if is_missing_index(exc):
                return []
            raise
        return bounded_terms(explain_terms(as_text(explained)))

    async def _query(
        self, flt: RuleFilter, *args: str | int | bytes, again: bool = True
    ) -> Sequence[object] | None:
        try:
            reply: Sequence[object] = await command(
                self.client, "FT.SEARCH", self.schema.index_name(flt.tenant), *args
            )
        except ResponseError as exc:
            if not is_missing_index(exc):
                raise
            if again and await recreate_after_move(self.client, self.schema, flt.tenant):
                return await self._query(flt, *args, again=False)
            return None  # a tenant without rules has no index yet
        return reply

    async def known_jurisdictions(self, tenant: str) -> set[str]:
        """Jurisdictions of the tenant's rules (lower-cased by RediSearch)."""
        try:
            values = await command(
                self.client, "FT.TAGVALS", self.schema.index_name(tenant), "jurisdiction"
            )
        except ResponseError as exc:
            if is_missing_index(exc):
                return set()
            raise
        return {as_text(v) for v in values}
