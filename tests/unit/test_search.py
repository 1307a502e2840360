"""Retrieval domain logic: filters, query syntax, reply parsing, ordering, token budget."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from shared.events import RuleDomain, RuleStatus
from shared.memory.labels import escape_tag, scope_values, tag_value, tag_values
from shared.memory.query import RuleFilter, RuleSelection, knn_query_args
from shared.memory.schema import FOREVER_UNTIL, RuleSchema, day_number
from shared.memory.search import (
    Fusion,
    Hit,
    cosine,
    order_hits,
    pack_to_budget,
    parse_search_reply,
)
from shared.tokens import HeuristicTokenCounter


def hit(rule_id: str, similarity: float, text: str = "text", priority: int = 0) -> Hit:
    return Hit(rule_id, 1, similarity, "", text, RuleDomain.LAW, "global", priority)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("acme", "acme"), ("en-US", "en\\-us"), ("1.2.0", "1\\.2\\.0"), ("北京市", "北京市"),
     ("a b", "a\\ b"), ("x|y", "x\\/y"),
     # Only ASCII punctuation and whitespace are escaped: RediSearch keeps any other escape.
     ("Côte d’Ivoire", "côte\\ d’ivoire"), ("São Paulo · BR", "são\\ paulo\\ ·\\ br"),
     # Labels are normalized first: NFKC (full-width brackets) and case folding.
     ("内蒙古（自治区）", "内蒙古\\(自治区\\)"), ("ÎLE-DE-FRANCE", "île\\-de\\-france"),
     ("île-de-france", "île\\-de\\-france"), ("Straße", "strasse")],
)  # fmt: skip
def test_escape_tag(raw: str, escaped: str) -> None:
    assert escape_tag(tag_value(raw)) == escaped  # normalized once (labels.py), then escaped


EVERY_STATUS = "@status:{active | pending | inactive}"


def test_tenant_selects_the_index_not_a_clause() -> None:
    assert RuleFilter(tenant="acme").expression() == "@status:{active}"
    # Any status is every status named: the clause is what keeps staged documents out.
    assert RuleFilter(tenant="acme", statuses=()).expression() == EVERY_STATUS
    schema = RuleSchema("p", 512, "m")
    assert schema.index_name("acme") == "p:idx:rules:{acme}"
    assert schema.doc_key("acme", "r1").startswith(schema.doc_prefix("acme"))
    assert not schema.doc_prefix("acme2").startswith(schema.doc_prefix("acme"))
    assert schema.tenant_of_index("p:idx:rules:{acme}") == "acme"
    assert schema.tenant_of_index("q:idx:rules:{acme}") is None
    assert schema.tenant_of_index("p:idx:rules:acme") is None  # an index of the old layout


def test_filter_with_every_clause() -> None:
    flt = RuleFilter(
        tenant="acme",
        domains=(RuleDomain.LAW,),
        jurisdictions=scope_values(["北京市", "global"]),
        locales=tag_values(["zh-CN"]),
        as_of=date(1970, 1, 11),
    )
    assert flt.selective
    assert flt.expression() == (
        "@status:{active} @domain:{law} @jurisdiction:{global | 北京市} "
        "@locale:{zh\\-cn} @eff_from:[-inf 10] @eff_until:[10 +inf]"
    )


def test_knn_query_args() -> None:
    args = knn_query_args(RuleFilter(tenant="t"), b"vec", k=7, ef_runtime=50)
    assert args[0] == (
        "(@status:{active})=>[KNN 7 @embedding $vec EF_RUNTIME 50 HYBRID_POLICY BATCHES AS score]"
    )
    selective = knn_query_args(RuleFilter(tenant="t", locales=("en",)), b"v", k=1, ef_runtime=9)
    assert "HYBRID_POLICY" not in str(selective[0])
    assert args[args.index("PARAMS") : args.index("PARAMS") + 4] == ["PARAMS", 2, "vec", b"vec"]
    assert args[args.index("LIMIT") : args.index("LIMIT") + 3] == ["LIMIT", 0, 7]


def test_day_numbers() -> None:
    assert day_number(date(1970, 1, 1)) == 0
    assert day_number(date(2026, 11, 23)) < FOREVER_UNTIL


def test_parse_resp2_search_reply() -> None:
    reply = [
        2,
        b"p:rule:acme:a",
        [b"rule_id", b"a", b"version", b"3", b"score", b"0.25", b"text", "北京".encode(),
         b"domain", b"law", b"jurisdiction", "北京市".encode(), b"priority", b"5", b"title", b"T"],
        b"p:rule:acme:b",
        [b"rule_id", b"b", b"version", b"1", b"score", b"0.5", b"text", b"x"],
    ]  # fmt: skip
    first, second = parse_search_reply(reply)
    assert first == Hit("a", 3, 0.75, "T", "北京", RuleDomain.LAW, "北京市", 5, vector_rank=1)
    assert (second.rule_id, second.similarity, second.domain) == ("b", 0.5, RuleDomain.OTHER)


def test_order_by_similarity_then_priority() -> None:
    ordered = order_hits([hit("low", 0.5), hit("tie-a", 0.8), hit("tie-b", 0.8, priority=9)])
    assert [h.rule_id for h in ordered] == ["tie-b", "tie-a", "low"]
    assert [h.rule_id for h in order_hits([hit("a", 0.2), hit("b", 0.6)], min_score=0.3)] == ["b"]


def test_budget_keeps_whole_rules_then_cuts_one() -> None:
    counter = HeuristicTokenCounter()
    hits = [hit("a", 0.9, "字" * 60), hit("b", 0.8, "字" * 60), hit("c", 0.7, "字" * 10)]
    rules = pack_to_budget(hits, top_k=3, token_budget=100, counter=counter)
    assert [r.rule_id for r in rules] == ["a", "b"]
    assert [r.tokens for r in rules] == [60, 40]
    assert rules[1].text == "字" * 40
    assert sum(r.tokens for r in rules) <= 100


def test_budget_drops_tiny_fragments_and_respects_top_k() -> None:
    hits = [hit("a", 0.9, "字" * 90), hit("b", 0.8, "字" * 60)]
    assert [r.rule_id for r in pack_to_budget(hits, top_k=3, token_budget=100)] == ["a"]
    assert [r.rule_id for r in pack_to_budget(hits, top_k=1, token_budget=1000)] == ["a"]


def test_token_counter() -> None:
    counter = HeuristicTokenCounter()
    assert counter.count("") == 0
    assert counter.count("公民的财产") == 5
    assert counter.count("hello, world") == 2 + 1 + 2
    assert counter.truncate("公民的财产", 3) == "公民的"
    assert counter.truncate("short", 10) == "short"


async def test_refreshing_cache_reloads_only_after_max_age() -> None:
    from shared.cache import Refreshing

    loads: list[str] = []

    async def load(key: str) -> str:
        loads.append(key)
        return f"{key}-{len(loads)}"

    fresh = Refreshing(load, max_age_s=60)
    assert [await fresh.get("a"), await fresh.get("a"), await fresh.get("b")] == [
        "a-1",
        "a-1",
        "b-2",
    ]
    stale = Refreshing(load, max_age_s=-1.0)
    assert await stale.get("a") != await stale.get("a")  # reloaded every time


def test_a_fragment_too_short_ends_the_list_even_if_later_rules_would_fit() -> None:
    """OPO truncates the concatenation: after the cut nothing follows, not even a small rule."""
    hits = [hit("a", 0.9, "字" * 90), hit("b", 0.8, "字" * 60), hit("c", 0.7, "字" * 5)]
    assert [r.rule_id for r in pack_to_budget(hits, top_k=3, token_budget=100)] == ["a"]


def test_scores_are_rounded_to_six_places() -> None:
    (rule,) = pack_to_budget([hit("a", 0.12345678)], top_k=1, token_budget=100)
    assert rule.score == 0.123457


def test_a_missing_index_is_recognized_by_either_message() -> None:
    from redis.exceptions import ResponseError

    from shared.redis import is_missing_index

    assert is_missing_index(ResponseError("Unknown index name"))
    assert is_missing_index(ResponseError("idx: no such index"))
    assert not is_missing_index(ResponseError("Syntax error at offset 3"))


@pytest.mark.parametrize(
    ("changes", "selective"),
    [
        ({}, False),
        ({"as_of": date(2026, 1, 1)}, False),  # nearly every rule passes a date
        ({"statuses": ()}, False),
        ({"domains": (RuleDomain.LAW,)}, True),
        ({"jurisdictions": ()}, True),  # global only
        ({"locales": ("de",)}, True),
        ({"tags": ("returns",)}, True),
    ],
)
def test_which_filters_are_selective(changes: dict[str, object], selective: bool) -> None:
    assert RuleFilter(tenant="t", **changes).selective is selective  # type: ignore[arg-type]


def test_any_status_and_tags_in_the_expression() -> None:
    assert RuleFilter(tenant="t", statuses=()).expression() == EVERY_STATUS
    flt = RuleFilter(
        tenant="t", statuses=(RuleStatus.INACTIVE,), tags=tag_values(["Returns", "a b"])
    )
    assert flt.expression() == "@status:{inactive} @tags:{returns | a\\ b}"


class WordCounter:
    """Counts words; truncates to half of what it is allowed (as a tokenizer that cuts at
    a sentence boundary would), so a cut leaves room behind it."""

    def count(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, tokens: int) -> str:
        return " ".join(text.split()[: tokens // 2])


def words_hit(rule_id: str, n: int) -> Hit:
    return hit(rule_id, 0.5, " ".join(["w"] * n))


def test_a_rule_that_fits_exactly_is_kept_whole() -> None:
    rules = pack_to_budget([words_hit("a", 60), words_hit("b", 40)], top_k=5, token_budget=100,
                           counter=WordCounter())  # fmt: skip
    assert [(r.rule_id, r.tokens) for r in rules] == [("a", 60), ("b", 40)]


@pytest.mark.parametrize(("remaining", "kept"), [(32, ["a", "b"]), (31, ["a"])])
def test_a_cut_is_made_only_with_at_least_32_tokens_left(remaining: int, kept: list[str]) -> None:
    hits = [words_hit("a", 50), words_hit("b", 100)]
    rules = pack_to_budget(hits, top_k=5, token_budget=50 + remaining, counter=WordCounter())
    assert [r.rule_id for r in rules] == kept


def test_the_list_ends_at_the_cut_rule_even_with_room_left() -> None:
    hits = [words_hit("a", 200), words_hit("b", 3)]
    rules = pack_to_budget(hits, top_k=5, token_budget=100, counter=WordCounter())
    assert [(r.rule_id, r.tokens) for r in rules] == [("a", 50)]


def test_min_score_keeps_a_similarity_equal_to_it() -> None:
    assert [h.rule_id for h in order_hits([hit("a", 0.3), hit("b", 0.2)], min_score=0.3)] == ["a"]


def test_similarities_equal_to_six_places_tie_and_priority_decides() -> None:
    close = [hit("a", 0.5000004, priority=1), hit("b", 0.5000001, priority=2)]
    assert [h.rule_id for h in order_hits(close)] == ["b", "a"]
    apart = [hit("a", 0.500002, priority=1), hit("b", 0.500001, priority=2)]
    assert [h.rule_id for h in order_hits(apart)] == ["a", "b"]
    ranked = [replace(hit("x", 0.1, priority=1), lexical_rank=1),
              replace(hit("y", 0.1, priority=5), lexical_rank=2)]  # fmt: skip
    fused = Fusion().fuse([], ranked)
    assert [h.rule_id for h in order_hits(fused)] == ["x", "y"]  # the fused ranks decide first


def test_cosine() -> None:
    one = np.array([1.0, 0.0], dtype=np.float32)
    assert cosine(one, np.array([3.0, 0.0], dtype=np.float32)) == pytest.approx(1.0)
    assert cosine(one, np.array([1.0, 1.0], dtype=np.float32)) == pytest.approx(2**-0.5)
    assert cosine(one * 2, np.array([0.0, -4.0], dtype=np.float32)) == 0.0
    assert cosine(one, np.array([-2.0, 0.0], dtype=np.float32)) == pytest.approx(-1.0)
    assert cosine(one, np.zeros(2, dtype=np.float32)) == 0.0
    assert cosine(one, np.ones(3, dtype=np.float32)) == 0.0  # another embedder's vector
    assert cosine(np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)) == 0.0


def test_a_reply_without_priority_parses_as_priority_0() -> None:
    (parsed,) = parse_search_reply([1, b"k", [b"rule_id", b"a", b"version", b"1", b"score", b"0"]])
    assert parsed.priority == 0


def test_a_listing_selects_any_status_and_scope_unless_named() -> None:
    assert RuleSelection().filter("t").expression() == EVERY_STATUS
    named = RuleSelection(scope=("EU",), statuses=(RuleStatus.ACTIVE,), tags=("returns",),
                          in_force=date(1970, 1, 11)).filter("t")  # fmt: skip
    # The scope's final TAG values, expanded once here: nothing downstream expands again.
    assert named.jurisdictions == ("global", "eu")
    assert (named.tenant, named.as_of) == ("t", date(1970, 1, 11))
    expected = ("@status:{active} @jurisdiction:{global | eu} @tags:{returns} "
                "@eff_from:[-inf 10] @eff_until:[10 +inf]")  # fmt: skip
    assert named.expression() == expected


def test_a_change_set_search_swaps_the_shadowed_live_rules_for_its_staged_ones() -> None:
    flt = RuleFilter(tenant="t", change_set="q3.eu-2", domains=(RuleDomain.LAW,))
    assert flt.expression() == (
        "((@status:{active} -@shadow:{q3\\.eu\\-2}) | "
        "(@stage:{q3\\.eu\\-2} @staged_status:{active})) @domain:{law}"
    )
    listing = RuleFilter(tenant="t", change_set="a", statuses=())
    assert "@staged_status:{active | pending | inactive}" in listing.expression()
