"""The retriever's request options, each observed in the search it runs: candidate depth,
lexical fusion, jurisdiction inference, the day rules must be in force, ``min_score``,
``top_k`` and the token budget, and how long a tenant's tree is reused."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from shared.events import JurisdictionNode, JurisdictionTree, RuleDomain, RuleScope
from shared.memory.query import RuleFilter
from shared.memory.retriever import RetrievalOptions, RuleRetriever
from shared.memory.search import Hit

TODAY = date(2026, 12, 7)


def hit(rule_id: str, similarity: float, text: str = "short rule") -> Hit:
    return Hit(rule_id=rule_id, version=1, similarity=similarity, title=rule_id, text=text,
               domain=RuleDomain.POLICY, jurisdiction="global", priority=0)  # fmt: skip


@dataclass
class RecordingSearcher:
    hits: list[Hit]
    jurisdictions: set[str] = field(default_factory=lambda: {"eu", "us"})
    calls: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0

    async def hybrid(self, query: str, vector: bytes, flt: RuleFilter, *, k: int,
                     lexical: bool = True) -> list[Hit]:  # fmt: skip
        self.calls.append({"query": query, "filter": flt, "k": k, "lexical": lexical})
        return list(self.hits)

    async def known_jurisdictions(self, tenant: str) -> set[str]:
        self.reads += 1
        return self.jurisdictions


@dataclass
class Trees:
    tree: JurisdictionTree | None = None
    reads: int = 0

    async def get(self, tenant: str) -> JurisdictionTree | None:
        self.reads += 1
        return self.tree


def retriever(searcher: RecordingSearcher, trees: Trees | None = None,
              **options: Any) -> RuleRetriever:  # fmt: skip
    return RuleRetriever(searcher, trees or Trees(), RetrievalOptions(**options))  # type: ignore[arg-type]


async def search(r: RuleRetriever, query: str = "returns?", **scope: Any) -> Any:
    return await r.retrieve("acme", RuleScope(**scope), query, b"v", today=TODAY)


@pytest.mark.parametrize(
    ("options", "top_k", "depth"),
    [({}, 5, 20), ({}, 15, 30), ({"candidates": 7, "candidates_factor": 1}, 5, 7),
     ({"candidates": 4, "candidates_factor": 3}, 2, 6)],
)  # fmt: skip
async def test_candidate_depth_is_the_larger_of_candidates_and_top_k_times_the_factor(
    options: dict[str, Any], top_k: int, depth: int
) -> None:
    searcher = RecordingSearcher([])
    await search(retriever(searcher, **options), top_k=top_k)
    assert searcher.calls[0]["k"] == depth


async def test_by_default_fusion_is_on_and_a_tenants_tree_is_reused_for_5_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [50.0]
    monkeypatch.setattr("shared.cache.time.monotonic", lambda: now[0])
    searcher, trees = RecordingSearcher([]), Trees()
    r = RuleRetriever(searcher, trees)  # type: ignore[arg-type]
    await search(r)
    assert searcher.calls[0]["lexical"] is True
    now[0] += 4.9
    await search(r)
    assert trees.reads == 1
    now[0] += 0.2
    await search(r)
    assert trees.reads == 2


@pytest.mark.parametrize("lexical", [True, False])
async def test_lexical_fusion_is_an_option(lexical: bool) -> None:
    searcher = RecordingSearcher([])
    await search(retriever(searcher, lexical=lexical))
    assert searcher.calls[0]["lexical"] is lexical


async def test_a_question_naming_a_jurisdiction_is_searched_there_unless_inference_is_off() -> None:
    searcher = RecordingSearcher([])
    found = await search(retriever(searcher), "What does EU law say?")
    assert found.scope.source == "question"
    assert searcher.calls[0]["filter"].jurisdictions == ("global", "eu")
    off = await search(retriever(searcher, infer_jurisdiction=False), "What does EU law say?")
    assert off.scope.source == "global"
    assert searcher.calls[1]["filter"].jurisdictions == ("global",)


async def test_the_filter_carries_the_scope_and_today_unless_a_day_is_named() -> None:
    searcher = RecordingSearcher([])
    await search(retriever(searcher), domains=(RuleDomain.LAW,), locales=("de",))
    flt = searcher.calls[0]["filter"]
    assert (flt.tenant, flt.domains, flt.locales, flt.as_of) == (
        "acme", (RuleDomain.LAW,), ("de",), TODAY)  # fmt: skip
    await search(retriever(searcher), as_of=date(2020, 1, 1), any_jurisdiction=True)
    flt = searcher.calls[1]["filter"]
    assert (flt.as_of, flt.jurisdictions) == (date(2020, 1, 1), None)


async def test_min_score_top_k_and_the_budget_cut_what_is_returned_not_the_candidates() -> None:
    hits = [hit("a", 0.9), hit("b", 0.5), hit("c", 0.3), hit("d", 0.8, "word " * 400)]
    found = await search(retriever(RecordingSearcher(hits)), min_score=0.4, top_k=2)
    assert [r.rule_id for r in found.rules] == ["a", "d"]
    assert [h.rule_id for h in found.candidates] == ["a", "d", "b"]
    tight = await search(retriever(RecordingSearcher(hits)), token_budget=40)
    assert [r.rule_id for r in tight.rules] == ["a", "d"]
    assert sum(r.tokens for r in tight.rules) <= 40
    assert tight.rules[1].text != hits[3].text  # cut to what was left, and the list ends there


async def test_a_declared_tree_wins_over_the_rules_own_jurisdictions_and_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("shared.cache.time.monotonic", lambda: now[0])
    searcher = RecordingSearcher([])
    trees = Trees(JurisdictionTree(tenant="acme", version=1, nodes=(JurisdictionNode(path="FR"),)))
    r = retriever(searcher, trees, refresh_s=5.0)
    scope = await r.scope("acme", RuleScope(), "Is this legal in FR?")
    assert scope.searched == ("global", "FR")
    await r.scope("acme", RuleScope(), "again")
    assert (trees.reads, searcher.reads) == (1, 0)
    now[0] += 5.5
    trees.tree = None  # the tree was removed: the rules' jurisdictions stand in
    scope = await r.scope("acme", RuleScope(), "Is this legal in the EU?")
    assert (trees.reads, searcher.reads) == (2, 1)
    assert scope.searched == ("global", "eu")
