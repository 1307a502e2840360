"""Which of the rules an answer was given it can be attributed to (``cited``), by a documented
method; the rules it was given are ``grounded_in`` whatever the answer says.

Method ``support`` (model-free, deterministic; ``attribution_score``):
1. **Terms.** Content words of the answer and the rule (case-folded, a trailing plural ``s``
   dropped, English function words left out), Chinese as character bigrams. The score is the
   share of the rule's terms the answer uses, ``|A ∩ R| / |R|``, counting at most
   ``KEY_TERMS`` of the rule's terms (the rarest first, by length, as a proxy): an answer that
   follows a long rule restates its point, not all of it.
2. **Quantities.** Amounts with a time unit (``14 days``, ``three weeks``, ``24 小时``) are
   read in days. An answer that states an amount of time where the rule states one, and none of
   the answer's amounts equals any of the rule's, contradicts it: score 0 ("returns after three
   weeks" against a 14-day rule).
3. A rule is cited when its score is at least ``CITE_AT``.
Method ``marker``: an answer that writes ``[n]`` cites the n-th rule it was given (the OPO
prompt numbers them), unless step 2 finds a contradiction. Markers are parsed when present; the
small default models rarely write them.

Measured on ``bench/data/attribution_labelled.jsonl`` (``python -m bench.attribution``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.events import Citation, RetrievedRule
from shared.language import is_cjk

CITE_AT = 0.34
KEY_TERMS = 8
_WORD = re.compile(r"[^\W_]+")
_MARKER = re.compile(r"\[(\d{1,2})\]")
_STOP = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
    "does", "for", "from", "had", "has", "have", "if", "in", "into", "is", "it", "its", "may",
    "must", "no", "not", "of", "on", "or", "our", "shall", "should", "so", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "to", "up", "was", "we", "were",
    "what", "when", "where", "which", "who", "will", "with", "within", "without", "would", "you",
    "your", "yes", "any", "all", "after", "before", "more", "less", "only", "also", "each", "per",
])  # fmt: skip
_UNIT_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS_WORDS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
               "eighty": 80, "ninety": 90}  # fmt: skip
_NUMBER_WORDS = {**_UNIT_WORDS, **_TENS_WORDS, "a": 1, "an": 1}
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}  # fmt: skip
_DAYS = {
    "hour": 1 / 24, "hours": 1 / 24, "day": 1, "days": 1, "week": 7, "weeks": 7,
    "month": 30, "months": 30, "year": 365, "years": 365,
    "小时": 1 / 24, "天": 1, "日": 1, "周": 7, "星期": 7, "个月": 30, "月": 30, "年": 365,
}  # fmt: skip
_AMOUNT = re.compile(
    # Not inside a Latin word on either side (CJK text has no spaces to mark words).
    r"(?<![a-z])(\d+(?:\.\d+)?|[一二两三四五六七八九十]+|(?:"
    + "|".join(_TENS_WORDS)
    + r")-(?:"
    + "|".join(_UNIT_WORDS)
    + r")|"
    + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
    + r")[\s-]*("
    + "|".join(sorted(map(re.escape, _DAYS), key=len, reverse=True))
    + r")(?![a-z])"
)


def _number(text: str) -> float:
    """``14``, ``fourteen``, ``twenty-one`` or ``十四`` (numerals up to 99)."""
    if text[0].isdigit():
        return float(text)
    if text in _NUMBER_WORDS:
        return _NUMBER_WORDS[text]
    tens, dash, unit = text.partition("-")
    if dash:  # twenty-one
        return _TENS_WORDS[tens] + _UNIT_WORDS[unit]
    tens, _, units = text.rpartition("十")
    if "十" not in text:
        return _CN_DIGITS.get(text, 0)
    return (_CN_DIGITS.get(tens, 0) if tens else 1) * 10 + _CN_DIGITS.get(units, 0)


def terms(text: str) -> set[str]:
    found: set[str] = set()
    for word in _WORD.findall(text.casefold()):
        if any(is_cjk(ch) for ch in word):
            found.update(word[i : i + 2] for i in range(len(word) - 1))
        elif len(word) > 2 and word not in _STOP and not word.isdigit():
            found.add(word[:-1] if word.endswith("s") and len(word) > 3 else word)
    return found


def amounts_in_days(text: str) -> set[float]:
    """Every amount of time the text states, in days (rounded to the hour)."""
    found = set()
    for number, unit in _AMOUNT.findall(text.casefold()):
        found.add(round(_number(number) * _DAYS[unit], 3))
    return found


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class _Read:
    """What a text says, read once: its terms and its amounts of time."""

    terms: set[str]
    amounts: set[float]

    @classmethod
    def of(cls, text: str) -> _Read:
        return cls(terms(text), amounts_in_days(text))

    def contradicts(self, rule: _Read) -> bool:
        return bool(self.amounts and rule.amounts and not self.amounts & rule.amounts)

    def score(self, rule: _Read) -> float:
        if self.contradicts(rule):
            return 0.0
        ruled = sorted(rule.terms, key=lambda t: (-len(t), t))[:KEY_TERMS]
        if not ruled:
            return 0.0
        return round(sum(t in self.terms for t in ruled) / len(ruled), 4)


def contradicts(answer: str, rule: str) -> bool:
    """The answer states amounts of time where the rule does, and none of them is the rule's."""
    return _Read.of(answer).contradicts(_Read.of(rule))


def attribution_score(answer: str, rule_text: str) -> float:
    """0..1: how much of the rule's point the answer restates; 0 when it contradicts it."""
    return _Read.of(answer).score(_Read.of(rule_text))


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class Attribution:
    """The method's verdict on every rule given (for the bench and ``--explain``)."""

    rule_id: str
    score: float
    cited: bool
    method: Literal["marker", "support"]


def attribute(answer: str, rules: Sequence[RetrievedRule]) -> list[Attribution]:
    """A verdict per rule, in order; the answer is read once for all of them."""
    said = _Read.of(answer)
    markers = {int(n) for n in _MARKER.findall(answer)}
    verdicts = []
    for position, rule in enumerate(rules, start=1):
        ruled = _Read.of(f"{rule.title} {rule.text}")
        if position in markers and not said.contradicts(ruled):
            verdicts.append(Attribution(rule.rule_id, 1.0, True, "marker"))
        else:
            score = said.score(ruled)
            verdicts.append(Attribution(rule.rule_id, score, score >= CITE_AT, "support"))
    return verdicts


def citations(answer: str, rules: Sequence[RetrievedRule]) -> tuple[Citation, ...]:
    """The rules the answer is attributed to, with the method and score of each."""
    return tuple(
        Citation(rule_id=rule.rule_id, version=rule.version, method=v.method, score=v.score)
        for rule, v in zip(rules, attribute(answer, rules), strict=True)
        if v.cited
    )
