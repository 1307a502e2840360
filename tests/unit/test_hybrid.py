"""Full-text query building (hostile questions included) and reciprocal-rank fusion."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from shared.events import RuleDomain
from shared.memory.labels import scope_values
from shared.memory.lexical import (
    LEXICAL_FIELDS,
    MAX_TERMS,
    POOL_FACTOR,
    bounded_terms,
    explain_terms,
    query_language,
    sanitized,
    text_query_args,
    words,
)
from shared.memory.query import RuleFilter
from shared.memory.schema import RETURN_FIELDS
from shared.memory.search import Fusion, Hit, admitted_by_score, order_hits, text_hits
from shared.memory.term_stats import choose_terms

EXPLAINED = """UNION {
  骑电动自行车可以带孩子吗
  INTERSECT {
    骑(expanded)
    电动(expanded)
    自行车(expanded)
    可以(expanded)
    孩子(expanded)
  }
}
UNION {
  shoes
  +shoe(expanded)
  shoe(expanded)
}
"""


def test_explain_terms_are_frisos_words_without_the_whole_run() -> None:
    # single characters and exam function words (可以) are no topic
    assert explain_terms(EXPLAINED) == ["电动", "自行车", "孩子", "shoes", "shoe", "shoe"]
    assert bounded_terms(explain_terms(EXPLAINED)) == ["电动", "自行车", "孩子", "shoes", "shoe"]


@pytest.mark.parametrize(
    "hostile",
    ['") | @text:(*) | ("', "-(a) ~b @tenant:{x} $vec *", "\\\\x00 {} [] <> ; ' \"", "a" * 10_000],
)
def test_only_letters_and_digits_reach_the_query(hostile: str) -> None:
    text = sanitized(hostile)
    assert all(ch.isalnum() or ch == " " for ch in text)
    assert len(text) <= 2000
    for term in words(hostile):
        assert term.isalnum()


def test_terms_are_bounded_and_deduplicated() -> None:
    many = " ".join(f"word{i}" for i in range(500))
    assert len(bounded_terms(words(many))) == MAX_TERMS
    assert words("Can I return shoes after 3 weeks? shoes") == [
        "can", "return", "shoes", "after", "weeks", "shoes",
    ]  # fmt: skip


def test_query_language_follows_the_script() -> None:
    assert query_language("骑电动自行车") == "chinese"
    assert query_language("Can I return shoes?") == "english"


def test_text_query_ranks_the_terms_alone_and_asks_the_filter_only_for_membership() -> None:
    flt = RuleFilter(tenant="t", domains=(RuleDomain.LAW,), jurisdictions=scope_values(["CN/山东"]))
    query = text_query_args(flt, ["电动", "孩子"], k=20, language="chinese")
    # ranked: the OR alone (RediSearch scores it wrongly inside an intersection), with scores
    assert query.ranked()[0] == "@title|text:(电动|孩子)"
    assert "WITHSCORES" in query.ranked()
    # members: the filter and the OR, ids only
    assert query.members()[0] == (
        "@status:{active} @domain:{law} @jurisdiction:{global | cn | cn\\/山东} "
        "@title|text:(电动|孩子)"
    )
    assert "WITHSCORES" not in query.members()
    for args in (query.ranked(), query.members()):
        assert args[args.index("LANGUAGE") + 1] == "chinese"
        assert args[args.index("SCORER") + 1] == "BM25STD"  # Okapi BM25 as written
        assert "NOCONTENT" in args
        assert args[args.index("LIMIT") + 2] == 20 * POOL_FACTOR
    unfiltered = text_query_args(
        RuleFilter(tenant="t", statuses=()), ["x"], k=1, language="english"
    )
    assert unfiltered.members()[0] == "@status:{active | pending | inactive} @title|text:(x)"
    # only the ranked ids are examined for membership
    among = query.members_among([b"p:rule:{t}:a", b"p:rule:{t}:b"])
    assert among[0] == query.members()[0]
    at = among.index("INKEYS")
    assert among[at + 1 : at + 4] == [2, b"p:rule:{t}:a", b"p:rule:{t}:b"]
    assert "WITHSCORES" not in among
    deeper = query.ranked(5000)
    assert deeper[0] == query.ranked()[0]
    assert "WITHSCORES" in deeper
    assert deeper[deeper.index("LIMIT") + 2] == 5000
    admitted = query.members(5000)
    assert admitted[0] == query.members()[0]
    assert admitted[admitted.index("LIMIT") + 2] == 5000


def test_only_members_are_kept_in_score_order() -> None:
    ranked = [4, b"k1", b"9.0", b"out", b"8.0", b"k2", b"7.5", b"k3", b"1.0"]
    members = [3, b"k3", b"k2", b"late"]  # the filter's own order is arbitrary
    assert admitted_by_score(ranked, members, 10) == [
        (b"k2", 7.5), (b"k3", 1.0), (b"late", 0.0),
    ]  # fmt: skip
    assert admitted_by_score(ranked, members, 1) == [(b"k2", 7.5)]
    assert admitted_by_score([0], [0], 5) == []


def _row(rule_id: str, version: str, vector: bytes) -> list[bytes | None]:
    fields = {"rule_id": rule_id.encode(), "version": version.encode(), "embedding": vector}
    return [fields.get(f) for f in LEXICAL_FIELDS]


def test_text_hits_get_their_cosine_and_ties_go_to_the_closer_rule() -> None:
    keys = [(b"k1", 2.0), (b"k2", 2.0), (b"k3", 1.5), (b"gone", 1.0)]
    gone: list[bytes | None] = [None] * len(LEXICAL_FIELDS)
    rows = [
        _row("first", "1", _vec(0.0, 1.0)),
        _row("closer", "2", _vec(1.0, 0.1)),
        _row("lower", "1", _vec(1.0, 0.0)),
        gone,  # deleted between the queries: left out
    ]
    hits = text_hits(keys, rows, _vec(1.0, 0.0))
    assert [(h.rule_id, h.lexical_rank, h.vector_rank) for h in hits] == [
        ("closer", 1, None), ("first", 2, None), ("lower", 3, None),
    ]  # fmt: skip
    assert hits[1].similarity == pytest.approx(0.0)
    assert hits[2].similarity == pytest.approx(1.0)
    assert hits[0].version == 2


def hit(rule_id: str, *, v: int | None = None, lx: int | None = None, sim: float = 0.5) -> Hit:
    return Hit(rule_id, 1, sim, "", "text", RuleDomain.LAW, "global", 0, vector_rank=v,
               lexical_rank=lx)  # fmt: skip


def test_reciprocal_rank_fusion() -> None:
    fusion = Fusion(k=60)
    vector = [hit("a", v=1), hit("b", v=2), hit("c", v=3)]
    lexical = [hit("c", lx=1), hit("d", lx=2)]
    fused = fusion.fuse(vector, lexical)
    assert [h.rule_id for h in fused] == ["c", "a", "b", "d"]
    c = fused[0]
    assert (c.vector_rank, c.lexical_rank) == (3, 1)
    assert c.fused == pytest.approx(1 / 63 + 1 / 61)
    assert fused[1].fused == pytest.approx(1 / 61)
    # weights move the balance
    lexical_first = Fusion(k=60, vector_weight=0.1).fuse(vector, lexical)
    assert [h.rule_id for h in lexical_first][:2] == ["c", "d"]
    # vector only: the fused order is the vector order
    assert [h.rule_id for h in fusion.fuse(vector, [])] == ["a", "b", "c"]


def test_order_keeps_fused_order_and_applies_min_score_to_cosine() -> None:
    fused = Fusion().fuse([hit("a", v=1, sim=0.9)], [hit("b", lx=1, sim=0.1), hit("a", lx=2)])
    assert [h.rule_id for h in order_hits(fused)] == ["a", "b"]
    assert [h.rule_id for h in order_hits(fused, min_score=0.5)] == ["a"]


def _vec(*values: float) -> bytes:
    return struct.pack(f"{len(values)}f", *values)


def test_the_rarest_terms_within_the_limit_are_searched() -> None:
    counts = {"规定": 3900, "电动": 12, "自行车": 30, "孩子": 12, "火星": 0}
    terms = ["规定", "孩子", "电动", "自行车", "火星", "电动"]
    # too common (most rules), absent (no rule), repeated: dropped; rarest first, ties in order
    assert choose_terms(terms, counts, limit=1000, max_terms=48) == ["孩子", "电动", "自行车"]
    assert choose_terms(terms, counts, limit=1000, max_terms=2) == ["孩子", "电动"]
    assert choose_terms(terms, counts, limit=12, max_terms=48) == ["孩子", "电动"]
    assert choose_terms([], counts, limit=1000, max_terms=48) == []


def test_the_question_is_cut_at_max_query_chars_and_terms_at_max_terms() -> None:
    inside = "a" * 1997 + " qq"  # "qq" ends at the 2,000th character
    assert words(inside) == ["a" * 1997, "qq"]
    past = "a" * 1998 + " qq"  # only its "q" is inside: a single letter, no term
    assert words(past) == ["a" * 1998]
    assert len(bounded_terms(f"term{i}" for i in range(60))) == MAX_TERMS == 48


def test_text_hits_read_the_rule_fields_and_the_vector_not_the_knn_score() -> None:
    args = text_query_args(RuleFilter(tenant="t"), ["refund"], k=7, language="english").ranked()
    assert "score" not in LEXICAL_FIELDS
    assert set(LEXICAL_FIELDS) == (set(RETURN_FIELDS) - {"score"}) | {"embedding"}
    assert args[args.index("LIMIT") : args.index("LIMIT") + 3] == ["LIMIT", 0, 7 * POOL_FACTOR]
    assert args[args.index("DIALECT") + 1] == 2


def test_fusion_scores_deep_ranks_and_ties_by_similarity_then_priority_then_id() -> None:
    fusion = Fusion()  # k = 60, as in the RRF paper
    (deep,) = fusion.fuse([hit("a", v=4)], [])
    assert deep.fused == round(1 / 64, 9)
    (both,) = fusion.fuse([hit("b", v=5)], [hit("b", lx=12)])
    assert both.fused == round(1 / 65 + 1 / 72, 9)
    tied = fusion.fuse(
        [Hit("p", 1, 0.5, "", "", RuleDomain.LAW, "global", 1, vector_rank=1),
         Hit("q", 1, 0.5, "", "", RuleDomain.LAW, "global", 3, lexical_rank=1),
         Hit("r", 1, 0.6, "", "", RuleDomain.LAW, "global", 0, lexical_rank=1)],
        [],
    )  # fmt: skip
    assert [h.rule_id for h in tied] == ["r", "q", "p"]


def test_two_versions_of_a_rule_give_one_hit_the_newest() -> None:
    """While a change set settles, a search can meet a rule's staged and live documents."""
    old = hit("returns", v=1, sim=0.9)
    new = dataclasses.replace(hit("returns", lx=1, sim=0.8), version=2)
    fused = Fusion().fuse([old], [new])
    assert [(h.rule_id, h.version, h.vector_rank, h.lexical_rank) for h in fused] == [
        ("returns", 2, None, 1)
    ]
    same = Fusion().fuse([hit("a", v=1)], [hit("a", lx=3)])
    assert [(h.version, h.vector_rank, h.lexical_rank) for h in same] == [(1, 1, 3)]
    ordered = order_hits([old, new, hit("other", sim=0.1)])
    assert [(h.rule_id, h.version) for h in ordered] == [("returns", 2), ("other", 1)]
