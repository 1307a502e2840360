"""Citations claim only what the answer supports: a rule the answer restates is cited, one it
contradicts (an amount of time that is not the rule's) or ignores is not; ``[n]`` markers cite
the n-th rule given unless they contradict it; the committed labelled set holds its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.attribution import (
    CITE_AT,
    amounts_in_days,
    attribution_score,
    citations,
    contradicts,
)
from shared.events import RetrievedRule, RuleDomain

LABELLED = Path(__file__).parents[2] / "bench" / "data" / "attribution_labelled.jsonl"


def rule(rule_id: str, text: str, version: int = 1) -> RetrievedRule:
    return RetrievedRule(rule_id=rule_id, version=version, score=0.5, title="", text=text,
                         domain=RuleDomain.POLICY, jurisdiction="global", priority=0)  # fmt: skip


RETURNS = rule("returns", "Customers may return items within 14 days of delivery.", 3)
PRIVACY = rule("privacy", "Never share customer personal data with third parties.")


def test_only_the_rule_an_answer_restates_is_cited() -> None:
    cited = citations("You can return items within 14 days of delivery.", [RETURNS, PRIVACY])
    assert [(c.rule_id, c.version, c.method) for c in cited] == [("returns", 3, "support")]
    assert cited[0].score >= CITE_AT


def test_an_answer_that_contradicts_its_rule_does_not_cite_it() -> None:
    answer = "Yes, you can return items of your delivery after three weeks."
    assert contradicts(answer, RETURNS.text)
    assert attribution_score(answer, RETURNS.text) == 0.0
    assert citations(answer, [RETURNS, PRIVACY]) == ()


def test_markers_cite_the_numbered_rule_unless_they_contradict_it() -> None:
    cited = citations("Data stays private [2]. See also [9].", [RETURNS, PRIVACY])
    assert [(c.rule_id, c.method, c.score) for c in cited] == [("privacy", "marker", 1.0)]
    assert citations("Returns within 30 days [1].", [RETURNS]) == ()


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("within 14 days", {14}), ("two weeks", {14}), ("a month", {30}), ("24 hours", {1.0}),
        ("十四天内", {14}), ("七日", {7}), ("三个月", {90}), ("二十天", {20}), ("两周", {14}),
        ("holidays", set()), ("14 dayslong", set()), ("no amounts", set()),
    ],
)  # fmt: skip
def test_amounts_of_time_in_days(text: str, days: set[float]) -> None:
    assert amounts_in_days(text) == days


def test_the_labelled_set_keeps_precision_and_recall_above_09_and_the_floor_below() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 60
    assert sum(r["kind"] == "contradicts" for r in rows) >= 10
    cited = [attribution_score(r["answer"], r["rule"]) >= CITE_AT for r in rows]
    hits = sum(c and r["follows"] for c, r in zip(cited, rows, strict=True))
    assert hits / sum(cited) >= 0.9
    assert hits / sum(r["follows"] for r in rows) >= 0.9
    assert sum(r["follows"] for r in rows) / len(rows) < 0.5  # citing everything is far worse
