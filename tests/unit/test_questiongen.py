"""Question generation: the few-shot prompt, strict parsing of generated questions, the CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.grading.datasets import load_exam
from services.grading.questiongen.generate import GeneratedQuestion, write_exam
from services.grading.questiongen.prompts import generation_prompt, parse_generated
from services.grading.questiongen.sources import SourceRule

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_generation_prompt_shows_rule_then_question_examples() -> None:
    example = load_exam(FIXTURES / "exam_zh.csv").questions[1]
    prompt = generation_prompt("经营者不得虚假宣传。", [example])
    assert prompt.startswith("请根据给定的规则出一道单项选择题")
    assert (
        "\n\n规则：个人信息保护规定:<第十条:向他人提供个人信息，应当取得本人同意。>\n"
        "问题：关于个人信息的提供，以下哪种做法是正确的？\n"
        "A. 随意提供给合作方\nB. 经本人同意后提供\nC. 出售给广告公司\nD. 公开发布\n答案：B\n\n"
    ) in prompt
    assert prompt.endswith("规则：经营者不得虚假宣传。\n问题：")
    assert generation_prompt("Do not lie to customers.", []).endswith(
        "Rule: Do not lie to customers.\nQuestion: "
    )


@pytest.mark.parametrize(
    ("reply", "parsed"),
    [
        ("夸大宣传？\nA. 合法\nB. 违法\nC. 无所谓\nD. 看情况\n答案：B",
         ("夸大宣传？", {"A": "合法", "B": "违法", "C": "无所谓", "D": "看情况"}, "B")),
        ("Allowed?\nA) Lying\nB) Honesty\nC) Fraud\nD) Theft\nAnswer: (B)\n\nRule: next",
         ("Allowed?", {"A": "Lying", "B": "Honesty", "C": "Fraud", "D": "Theft"}, "B")),
        ("Q?\nA. x\nB. y\nC. z\nAnswer: B", None),  # three options
        ("Q?\nA. x\nB. y\nC. z\nD. w\nAnswer: E", None),  # answer not an option
        ("Q?\nA. x\nsome text\nB. y\nC. z\nD. w\nAnswer: A", None),  # text between options
        ("A. x\nB. y\nC. z\nD. w\nAnswer: A", None),  # no stem
        ("I cannot write that question.", None),
    ],
)  # fmt: skip
def test_parse_generated(reply: str, parsed: tuple[str, dict[str, str], str] | None) -> None:
    assert parse_generated(reply) == parsed


def test_written_exam_loads_back(tmp_path: Path) -> None:
    question = load_exam(FIXTURES / "exam_zh.csv").questions[0]
    source = SourceRule("consumer-5", 3, question.principle or "", "示例省")
    path = tmp_path / "generated.csv"
    write_exam(path, [GeneratedQuestion(question, source)])
    (loaded,) = load_exam(path).questions
    assert loaded.model_dump(exclude={"category"}) == question.model_dump(exclude={"category"})
    assert "consumer-5@3" in path.read_text(encoding="utf-8")
