"""OPO templates: retrieved rules as supplementary information before the question.

The Chinese strings are OPO's own (see ../shared/data/README.md); the English ones are their
translation. Rule texts are concatenated in retrieval order, as OPO does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.events import RetrievedRule


@dataclass(frozen=True, slots=True)
class OpoTemplate:
    with_rules: str
    """User turn with rules: ``{rules}`` and ``{question}``."""
    without_rules: str
    """User turn for the baseline: ``{question}``."""
    rule_separator: str


ZH = OpoTemplate(
    with_rules="辅助信息：{rules}\n\n问题：{question}\n答案：",
    without_rules="问题：{question}\n答案：",
    rule_separator="\n",
)
EN = OpoTemplate(
    with_rules="Supplementary information: {rules}\n\nQuestion: {question}\nAnswer:",
    without_rules="Question: {question}\nAnswer:",
    rule_separator="\n",
)


def template_for(language: str) -> OpoTemplate:
    return ZH if language == "zh" else EN


def render_user_turn(question: str, rules: Sequence[RetrievedRule], template: OpoTemplate) -> str:
    if not rules:
        return template.without_rules.format(question=question)
    joined = template.rule_separator.join(rule.text for rule in rules)
    return template.with_rules.format(rules=joined, question=question)
