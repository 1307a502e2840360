"""Answer extraction on real-looking replies (zh and en), and logprob scoring."""

from __future__ import annotations

import pytest

from services.grading.extract import choice_from_logprobs, extract_choice

ABCD = {"A": "3日", "B": "7日", "C": "15日", "D": "30日"}
SOCIAL = {"A": "Taboo", "B": "Normal", "C": "Expected"}
EN = {"A": "7 days", "B": "30 days", "C": "90 days"}

CASES = [
    # zh: OPO's patterns and what chat models actually write
    ("B", ABCD, "B"),
    ("B。", ABCD, "B"),
    ("（C）正确", ABCD, "C"),
    ("**D**", ABCD, "D"),
    ("答案是C。", ABCD, "C"),
    ("答案是 选项 D", ABCD, "D"),
    ("答案：选项D，因为实施部门应当提出修改建议。", ABCD, "D"),
    ("答案为A", ABCD, "A"),
    ("选A", ABCD, "A"),
    ("我认为应该选B，理由如下：A项错误，C项错误，D项错误。", ABCD, "B"),
    ("根据《示例省消费者保护条例》第五条，经营者应在七日内处理，因此正确答案是B。", ABCD, "B"),
    ("选项C正确，其余选项均与规定不符。", ABCD, "C"),
    ("A项错误，B项错误，C项正确。", ABCD, None),  # names three letters and no answer phrase
    ("这道题我无法回答。", ABCD, None),
    ("", ABCD, None),
    ("经营者应在B选项所述期限内处理。", ABCD, "B"),  # the only letter standing alone
    ("答案选C", ABCD, "C"),  # OPO's 答案选X
    ("答案是A。不对，重新考虑后，答案是D。", ABCD, "D"),  # the last answer phrase, as OPO
    # en
    ("The answer is (B).", EN, "B"),
    ("Answer: C", EN, "C"),
    ("answer is: A", EN, "A"),
    ("C. 90 days", EN, "C"),
    ("C is right, because the policy says so.", EN, "C"),
    ("I would choose option A because the policy allows it.", EN, "A"),
    ("Option B is correct.", EN, "B"),
    ("A person should follow the 30 days rule.", EN, "B"),  # "A" is the article; the text names B
    ("Both A and C could apply.", EN, None),
    ("This is an answer without a letter.", EN, None),
    ("Bob's behavior is Expected.", SOCIAL, "C"),
    ("It is Taboo to laugh at a funeral.", SOCIAL, "A"),
    ("Normal or Taboo, hard to say.", SOCIAL, None),
    ("B. Normal", SOCIAL, "B"),
    # forms OPO's patterns misread (issue 37)
    ("b", ABCD, "B"),  # lowercase
    ("c。", ABCD, "C"),
    ("答案是d", ABCD, "D"),
    ("The answer is b.", EN, "B"),
    ("(a) 7 days", EN, "A"),
    ("a person should follow the 30 days rule.", EN, "B"),  # "a" the article, not an answer
    ("A、B", ABCD, None),  # two answers are no single choice
    ("A,C", ABCD, None),
    ("A, a customer may return it within 7 days.", EN, "A"),  # "a" the article again
    ("答案是A或B", ABCD, None),
    ("答案是A或B。重新考虑后，答案是B。", ABCD, "B"),  # the last phrase settles it
    ("The answer is A or C.", EN, None),
    ("A公司应当在7日内退款，因此选B。", ABCD, "B"),  # "A公司" is a company, not option A
    ("A公司的做法符合规定。", ABCD, None),  # a name and no option
    ("B市的规定适用于本案。", ABCD, None),  # a city, not option B
]


@pytest.mark.parametrize(("reply", "options", "expected"), CASES)
def test_extract_choice(reply: str, options: dict[str, str], expected: str | None) -> None:
    assert extract_choice(reply, options) == expected


def test_choice_from_logprobs_takes_the_most_likely_option_letter() -> None:
    logprobs = {"A": -2.5, "B": -0.3, "C": -1.2, "X": 0.0}
    assert choice_from_logprobs(logprobs, ("A", "B", "C")) == "B"
    assert choice_from_logprobs({"X": -0.1}, ("A", "B")) is None
    assert choice_from_logprobs(None, ("A", "B")) is None


def test_every_spelling_of_a_letter_counts_in_logprob_scoring() -> None:
    """A model that answers "b" or " B" chose B: the likeliest spelling of each letter counts."""
    logprobs = {"A": -1.5, " b": -0.4, "B": -2.0, "c": -0.9, "The": -0.1}
    assert choice_from_logprobs(logprobs, ("A", "B", "C")) == "B"
    assert choice_from_logprobs({" a": -0.2, "B": -0.3}, ("A", "B")) == "A"
