"""The generation prompt (few-shot from OPO's example files) and strict parsing of its output.

Each example shows a rule, then a question about it in the exam format; the model continues the
pattern for a new rule. Output that is not exactly a stem, options A-D and an answer letter is
discarded (counted), never repaired.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.grading.datasets import ExamQuestion
from shared.language import language_of

INSTRUCTIONS = {
    "zh": "请根据给定的规则出一道单项选择题，考查对该规则的理解与应用。题目需有四个选项（A-D），"
          "只有一个正确答案，并给出答案。严格按照示例的格式输出。",
    "en": "Write one single-choice question that tests understanding and application of the given "
          "rule. Give four options (A-D), exactly one correct, and the answer. Follow the format "
          "of the examples exactly.",
}  # fmt: skip
LABELS = {"zh": ("规则：", "问题：", "答案："), "en": ("Rule: ", "Question: ", "Answer: ")}


def render_example(question: ExamQuestion, language: str) -> str:
    rule, stem, answer = LABELS[language]
    options = "".join(f"\n{letter}. {text}" for letter, text in question.options.items())
    return f"{rule}{question.principle}\n{stem}{question.stem}{options}\n{answer}{question.answer}"


def generation_prompt(rule_text: str, examples: Sequence[ExamQuestion]) -> str:
    language = language_of(rule_text)
    rule, stem, _ = LABELS[language]
    shots = "\n\n".join(render_example(e, language) for e in examples if e.principle)
    return f"{INSTRUCTIONS[language]}\n\n{shots}\n\n{rule}{rule_text}\n{stem}"


_OPTION = re.compile(r"^\s*([A-D])\s*[.．、:：)]\s*(.+?)\s*$")
_ANSWER = re.compile(r"^\s*(?:答案|Answer)\s*[:：]\s*\(?([A-D])\)?\s*[.。]?\s*$", re.IGNORECASE)


def parse_generated(text: str) -> tuple[str, dict[str, str], str] | None:
    """(stem, options, answer) from a reply continuing ``问题：``/``Question:``; None unless
    the reply has a stem, exactly the options A, B, C, D in order and an answer among them."""
    stem_lines: list[str] = []
    options: dict[str, str] = {}
    answer: str | None = None
    for line in text.strip().splitlines():
        if answer is not None:
            break  # the model started another example: ignore the rest
        if (match := _ANSWER.match(line)) is not None:
            answer = match.group(1).upper()
        elif (match := _OPTION.match(line)) is not None:
            options[match.group(1)] = match.group(2)
        elif options:
            return None  # text between options: not the format
        elif line.strip():
            stem_lines.append(line.strip().removeprefix("问题：").removeprefix("Question: "))
    stem = " ".join(stem_lines).strip()
    if not stem or list(options) != ["A", "B", "C", "D"] or answer not in options:
        return None
    return stem, options, answer
