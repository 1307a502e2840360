"""Full-text queries over the rule index: a question -> an OR query of its terms (BM25).

RediSearch ANDs the terms of a query, so a whole question finds nothing; the question is cut
into terms and the terms are ORed. English text is split into words here (RediSearch stems
each term at query time, as it stemmed the rules). Chinese is written without spaces: the
words are the ones RediSearch's own segmenter (friso, ``LANGUAGE chinese``) cut the rules
into, obtained with ``FT.EXPLAIN`` of the question, so query and index always agree.

The question is hostile text: only letters and digits reach the query syntax, its length and
its number of terms are bounded. Pure: unit-tested without Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.language import is_cjk, language_of
from shared.memory.query import RuleFilter
from shared.memory.schema import RETURN_FIELDS

MAX_QUERY_CHARS = 2000
"""Only the start of a longer question is searched for words."""
MAX_TERMS = 48
SCORER = "BM25STD"
"""Okapi BM25 as written (k1 1.2, b 0.75). RediSearch's ``BM25`` is an older variant of its
own: over the OR of a question's terms (ranked alone, ``TextQuery``) it put A-Law's governing
article first for 0.17 of question stems, ``BM25STD`` for 0.96 (two write orders each)."""

_WORD = re.compile(r"[^\W_]+")
_STOP_ZH = frozenset(
    [
        "可以",
        "以下",
        "哪个",
        "哪些",
        "什么",
        "如何",
        "是否",
        "应该",
        "应当",
        "关于",
        "根据",
        "我们",
        "他们",
        "你们",
        "这个",
        "那个",
        "这些",
        "那些",
        "如果",
        "因为",
        "所以",
        "但是",
        "并且",
        "或者",
        "以及",
        "进行",
        "选项",
        "正确",
        "错误",
        "说法",
        "下列",
        "问题",
        "答案",
        "一个",
        "没有",
        "需要",
        "可能",
        "已经",
        "还是",
        "为了",
        "由于",
        "对于",
        "其中",
        "之后",
        "之前",
        "时候",
        "情况",
    ]
)
"""Function words of exam questions that every article shares (friso's own stop list is
English)."""


def query_language(text: str) -> str:
    return "chinese" if language_of(text) == "zh" else "english"


def sanitized(text: str) -> str:
    """Letters and digits only (any script), single-spaced, bounded: safe as query text."""
    return " ".join(_WORD.findall(text[:MAX_QUERY_CHARS]))


def words(text: str) -> list[str]:
    """Terms of a text in a script written with spaces."""
    return [w for w in _WORD.findall(text[:MAX_QUERY_CHARS].casefold()) if _useful(w)]


def explain_terms(explained: str) -> list[str]:
    """The leaf terms of an ``FT.EXPLAIN`` reply, in order: friso's words of a Chinese run
    (``电动(expanded)``) and the words of other scripts with their stems (``+shoe(expanded)``).
    The unsegmented run itself (a leaf without the mark) is not a term."""
    terms: list[str] = []
    for line in explained.splitlines():
        leaf = line.strip()
        if not leaf or leaf.endswith("{") or leaf == "}":
            continue
        marked = leaf.endswith("(expanded)")
        leaf = leaf.removesuffix("(expanded)").lstrip("+").strip()
        if not marked and any(is_cjk(ch) for ch in leaf):
            continue
        if _WORD.fullmatch(leaf) and _useful(leaf.casefold()):
            terms.append(leaf.casefold())
    return terms


def _useful(term: str) -> bool:
    """Single characters and digits carry no topic (and match half the corpus); nor do the
    question words every exam shares."""
    return len(term) > 1 and not term.isdigit() and term not in _STOP_ZH


def bounded_terms(terms: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(terms))[:MAX_TERMS]


POOL_FACTOR = 8
"""The ranking and the membership query return up to this many times k ids (``TextQuery``)."""
MAX_DEPTH = 5000
"""How deep a ranking goes when the first cut held too few of the filter's members."""


@dataclass(frozen=True, slots=True)
class TextQuery:
    """The FT.SEARCH argument lists (after the index name) of one full-text search.

    RediSearch scores an OR of terms wrongly once it is intersected with a filter: inside the
    intersection the union contributes the terms its iterator happens to stop on, which depends
    on the documents' internal ids, i.e. on the order ingest wrote them (measured on A-Law
    stems: one article's BM25 48.8 or 12.7 by write order; hit@1 0.898-0.966 over four orders).
    Unfiltered, within the tenant's own index, the scores are right. So ``ranked`` scores the
    OR alone (ids and scores) and ``members_among`` asks which of those ids the filter admits
    (``INKEYS``: only they are examined); the searcher keeps the admitted ids in score order.
    The filter decides what may be returned, never how it ranks. When the ranking was cut
    before k members were found (a narrow filter in a large tenant), ``members`` asks the filter
    over the whole index and the ranking goes ``MAX_DEPTH`` ids deep, so the members are
    ordered by their right scores (``INKEYS`` cannot restrict the ranking: RediSearch scores an
    OR restricted to keys as wrongly as one inside a filter); members deeper still follow in the
    filter's own order."""

    clause: str
    filtered: str
    common: tuple[str, ...]
    pool: int

    def ranked(self, depth: int | None = None) -> list[str | int]:
        """The OR alone, ids and scores, ``pool`` (or ``depth``) ids deep."""
        return [self.clause, *self.common, "WITHSCORES", *_limit(depth or self.pool)]

    def members(self, depth: int | None = None) -> list[str | int]:
        """The ids the filter admits over the whole index, ``pool`` (or ``depth``) of them."""
        return [self.filtered, *self.common, *_limit(depth or self.pool)]

    def members_among(self, keys: Sequence[bytes]) -> list[str | int | bytes]:
        """The ids among ``keys`` the filter admits."""
        return [self.filtered, *self.common, "INKEYS", len(keys), *keys, *_limit(self.pool)]


def _limit(depth: int) -> tuple[str | int, ...]:
    return ("LIMIT", 0, depth, "DIALECT", 2)


def text_query_args(flt: RuleFilter, terms: Sequence[str], *, k: int, language: str) -> TextQuery:
    clause = "@title|text:(" + "|".join(terms) + ")"
    return TextQuery(
        clause=clause,
        filtered=f"{flt.expression()} {clause}",
        common=("LANGUAGE", language, "SCORER", SCORER, "NOCONTENT"),
        pool=k * POOL_FACTOR,
    )


LEXICAL_FIELDS = (*(f for f in RETURN_FIELDS if f != "score"), "embedding")
