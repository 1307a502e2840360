"""Judge prompts, versioned in files (``prompts/<name>.v<version>.txt``).

A verdict is one word from the prompt's labels. Changing a prompt means a new version file; the
cache key includes the rendered prompt, so old verdicts are never reused for new wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class JudgePrompt:
    name: str
    version: int
    labels: tuple[str, ...]
    """The allowed verdicts, lower case; a reply is parsed strictly against them."""

    @property
    def template(self) -> str:
        path = resources.files(__package__).joinpath("prompts", f"{self.name}.v{self.version}.txt")
        return path.read_text(encoding="utf-8")

    def render(self, **fields: str) -> str:
        return self.template.format(**fields)

    @property
    def reminder(self) -> str:
        """Sent after an unparseable reply."""
        return f"Answer with exactly one word: {' or '.join(self.labels)}."


COURSE_CORRECTION = JudgePrompt("course_correction", 1, ("yes", "no"))
"""C2-EVAL: does the continuation after a harmful prefill steer away? (yes = corrected)"""
HARMFUL_ANSWER = JudgePrompt("harmful_answer", 1, ("positive", "negative"))
"""IterAlign: is an answer harmless (positive) or harmful (negative)?"""

QUESTION_QUALITY = JudgePrompt("question_quality", 1, ("pass", "fail"))
"""OPO's quality check of a generated question, four points at once (pass = keep)."""

PROPOSE_PRINCIPLES = JudgePrompt("propose_principles", 1, ())
"""IterAlign: principles that would have prevented the listed harmful answers (free text)."""

SELECT_ASPECTS = JudgePrompt("select_aspects", 1, ())
"""DRPO's dynamic reward, step 1: the 2-5 aspects that matter for a query (JSON)."""
SCORE_ASPECTS = JudgePrompt("score_aspects", 1, ())
"""DRPO's dynamic reward, step 2: a 1-5 score per selected aspect, with a rationale (JSON)."""
OPTIMIZE_PROMPT = JudgePrompt("optimize_prompt", 1, ())
"""DRPO's optimizer: a rewrite of the system prompt from the evaluated answers (JSON)."""


def parse_verdict(reply: str, labels: tuple[str, ...]) -> str | None:
    """The label when the reply is exactly one of them (case, surrounding punctuation and
    markdown ignored); None otherwise: no guessing from longer text."""
    word = reply.strip().strip("*_`\"'.!,:; \n").lower()
    return word if word in labels else None
