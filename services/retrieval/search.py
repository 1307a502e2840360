"""Searching the rule memory: scope -> filter, KNN, ordering, token budget.

Everything but ``RuleSearcher.search`` is pure and unit-tested without Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.events import GLOBAL_JURISDICTION, RetrievedRule, RuleDomain, RuleScope
from shared.memory.query import RuleFilter, knn_query_args
from shared.memory.schema import RuleSchema, normalize_label
from shared.redis import as_text, command
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


def mentioned_jurisdictions(text: str, known: Iterable[str]) -> tuple[str, ...]:
    """Known region names that occur in the question as whole words (longest first, no
    global). Names and text are compared normalized (``normalize_label``): TAG values are
    stored that way. A name in a script written with spaces must not sit inside a longer word
    ("EU" is not in "neutral"); a CJK name may (北京 in 北京市的).

    Returns the known names as given (as FT.TAGVALS lists them)."""
    folded = normalize_label(text)
    names = sorted((k for k in known if k and k != GLOBAL_JURISDICTION), key=len, reverse=True)
    return tuple(name for name in names if _whole_word_in(normalize_label(name), folded))


def _whole_word_in(name: str, text: str) -> bool:
    if not name:
        return False
    start = text.find(name)
    while start >= 0:
        end = start + len(name)
        before_ok = start == 0 or not (_joins(name[0]) and _joins(text[start - 1]))
        after_ok = end == len(text) or not (_joins(name[-1]) and _joins(text[end]))
        if before_ok and after_ok:
            return True
        start = text.find(name, start + 1)
    return False


def _joins(ch: str) -> bool:
    """Whether ``ch`` continues a word of a script written with spaces (Latin, Cyrillic, ...):
    letters and digits, but not CJK characters, which are written without spaces."""
    return ch.isalnum() and not _is_cjk(ch)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals .. unified ideographs, kana, bopomofo
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # CJK extensions B..
    )


def build_filter(
    tenant: str,
    scope: RuleScope,
    *,
    today: date,
    query: str = "",
    known_jurisdictions: Iterable[str] = (),
) -> RuleFilter:
    """The filter a request's scope asks for; jurisdictions inferred from the question when the
    scope names none and the question names known regions."""
    jurisdictions = scope.jurisdictions or mentioned_jurisdictions(query, known_jurisdictions)
    return RuleFilter(
        tenant=tenant,
        domains=scope.domains,
        jurisdictions=tuple(jurisdictions),
        locales=scope.locales,
        as_of=scope.as_of or today,
    )


def parse_search_reply(reply: Sequence[object]) -> list[Hit]:
    """Parse a RESP2 FT.SEARCH reply: [total, key, [field, value, ...], key, [...], ...]."""
    hits: list[Hit] = []
    for fields in reply[2::2]:
        assert isinstance(fields, list)
        doc = {
            name.decode(): value.decode()
            for name, value in zip(fields[::2], fields[1::2], strict=True)
            if isinstance(name, bytes) and isinstance(value, bytes)
        }
        hits.append(
            Hit(
                rule_id=doc["rule_id"],
                version=int(doc["version"]),
                similarity=1.0 - float(doc["score"]),
                title=doc.get("title", ""),
                text=doc.get("text", ""),
                domain=RuleDomain(doc.get("domain", RuleDomain.OTHER.value)),
                jurisdiction=doc.get("jurisdiction_label")
                or doc.get("jurisdiction", GLOBAL_JURISDICTION),
                priority=int(doc.get("priority", 0)),
            )
        )
    return hits


def order_hits(hits: Iterable[Hit], *, min_score: float | None = None) -> list[Hit]:
    """Most similar first; higher priority breaks ties; below ``min_score`` dropped."""
    kept = [h for h in hits if min_score is None or h.similarity >= min_score]
    return sorted(kept, key=lambda h: (-round(h.similarity, 6), -h.priority, h.rule_id))


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
            )
        )
        remaining -= tokens
        if text is not hit.text:
            break
    return rules


class RuleSearcher:
    """Runs KNN searches against the rule index."""

    def __init__(self, client: aioredis.Redis, schema: RuleSchema, *, ef_runtime: int) -> None:
        self.client = client
        self.schema = schema
        self.ef_runtime = ef_runtime

    async def search(self, vector: bytes, flt: RuleFilter, *, k: int) -> list[Hit]:
        try:
            reply = await command(
                self.client,
                "FT.SEARCH",
                self.schema.index_name(flt.tenant),
                *knn_query_args(flt, vector, k=k, ef_runtime=self.ef_runtime),
            )
        except ResponseError as exc:
            if _is_missing_index(exc):
                return []  # a tenant without rules has no index yet
            raise
        return parse_search_reply(reply)

    async def known_jurisdictions(self, tenant: str) -> set[str]:
        """Jurisdictions of the tenant's rules (lower-cased by RediSearch)."""
        try:
            values = await command(
                self.client, "FT.TAGVALS", self.schema.index_name(tenant), "jurisdiction"
            )
        except ResponseError as exc:
            if _is_missing_index(exc):
                return set()
            raise
        return {as_text(v) for v in values}


def _is_missing_index(exc: ResponseError) -> bool:
    message = str(exc).lower()
    return "unknown index" in message or "no such index" in message
