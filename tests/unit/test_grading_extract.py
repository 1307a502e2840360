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
]


@pytest.mark.parametrize(("reply", "options", "expected"), CASES)
def test_extract_choice(reply: str, options: dict[str, str], expected: str | None) -> None:
    assert extract_choice(reply, options) == expected


def test_choice_from_logprobs_takes_the_most_likely_option_letter() -> None:
    logprobs = {"A": -2.5, "B": -0.3, "C": -1.2, "X": 0.0}
    assert choice_from_logprobs(logprobs, ("A", "B", "C")) == "B"
    assert choice_from_logprobs({"X": -0.1}, ("A", "B")) is None
    assert choice_from_logprobs(None, ("A", "B")) is None
