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


# The tables of number words and units, and the arithmetic on them (the spec, example by example).

ENGLISH = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "a": 1,
    "an": 1,
    "twenty-one": 21,
    "forty-five": 45,
    "ninety-nine": 99,
}
UNITS = {"hour": 1 / 24, "hours": 1 / 24, "day": 1, "days": 1, "week": 7, "weeks": 7,
         "month": 30, "months": 30, "year": 365, "years": 365, "小时": 1 / 24, "天": 1, "日": 1,
         "周": 7, "星期": 7, "个月": 30, "月": 30, "年": 365}  # fmt: skip


@pytest.mark.parametrize(("word", "value"), sorted(ENGLISH.items()))
def test_every_number_word(word: str, value: int) -> None:
    assert amounts_in_days(f"within {word} days") == {value}


@pytest.mark.parametrize(("unit", "days"), sorted(UNITS.items()))
def test_every_unit_of_time(unit: str, days: float) -> None:
    assert amounts_in_days(f"within 3 {unit} here") == {round(3 * days, 3)}


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("一", 1), ("二", 2), ("两", 2), ("三", 3), ("四", 4), ("五", 5), ("六", 6), ("七", 7),
     ("八", 8), ("九", 9), ("十", 10), ("十四", 14), ("二十", 20), ("二十四", 24), ("九十九", 99),
     ("3.5", 3.5)],
)  # fmt: skip
def test_chinese_numerals_up_to_99(numeral: str, value: float) -> None:
    assert amounts_in_days(f"在{numeral}天内") == {value}


def test_amounts_are_kept_to_the_thousandth_of_a_day() -> None:
    assert amounts_in_days("36 hours") == {1.5}
    assert amounts_in_days("1 hour") == {0.042}
    assert amounts_in_days("twenty-one days, or three weeks") == {21}


def test_only_the_rules_eight_longest_terms_count_and_scores_keep_four_places() -> None:
    rule = (
        "alphabetical bookkeeping concatenate derivative elaborate fabulous gigantic hybrid ink jot"
    )
    longest = "alphabetical bookkeeping concatenate derivative elaborate fabulous gigantic hybrid"
    assert attribution_score(longest, rule) == 1.0
    assert attribution_score("ink jot", rule) == 0.0  # the two shortest are not key terms
    assert attribution_score("alphabetical bookkeeping concatenate", rule) == 0.375
    assert attribution_score("refund", "Refunds apply to shoes.") == 0.3333  # 1 of 3 terms
    assert attribution_score("anything", "a an the of") == 0.0  # a rule with no terms


def test_a_long_number_word_wins_over_its_prefix() -> None:
    assert amounts_in_days("fourteen days") == {14}  # not "four"
    assert amounts_in_days("3 个月") == {90}  # not 月 alone
