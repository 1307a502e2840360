"""The exam evidence a change set carries, and the gate a promote checks it against.

``exam run --candidate NAME`` asks every question twice, grounded in the live memory (``opo``)
and in the memory as it would be once NAME is promoted (``candidate``); grading keeps the paired
result on the set, tied to the revision it graded (``ExamEvidence``). ``rules promote NAME
--require "accuracy_delta >= -1pp"`` promotes only when the evidence of the set's current
revision meets every condition (``Gate``); otherwise nothing is published.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import Hinted
from shared.events import ExamResult, Strategy, utcnow


class CategoryDelta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str
    live: float
    candidate: float
    delta: float
    answered: int


class ExamEvidence(BaseModel):
    """A candidate exam's paired result, as kept on the change set it graded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    revision: int
    """The change set's revision the exam graded (a later stage makes it stale)."""
    dataset: str
    pairs: int
    """Questions answered both ways."""
    live_accuracy: float
    candidate_accuracy: float
    accuracy_delta: float
    """Candidate minus live, on the paired questions (fractions: 0.01 is one point)."""
    candidate_only: int
    live_only: int
    p_value: float
    """Exact McNemar on the discordant pairs."""
    categories: tuple[CategoryDelta, ...] = ()
    recorded_at: datetime = Field(default_factory=utcnow)

    @property
    def worst_category_delta(self) -> float:
        return min((c.delta for c in self.categories), default=self.accuracy_delta)


def evidence_of(result: ExamResult, revision: int) -> ExamEvidence | None:
    """The evidence of a final candidate exam; None when it paired no question."""
    scores = {s.strategy: s for s in result.scores}
    arms = (Strategy.OPO, Strategy.CANDIDATE)
    pair = next((c for c in result.comparisons if (c.baseline, c.treatment) == arms), None)
    live, candidate = scores.get(Strategy.OPO), scores.get(Strategy.CANDIDATE)
    if pair is None or live is None or candidate is None or not pair.pairs:
        return None
    live_by = {c.category: c for c in live.categories}
    categories = tuple(
        CategoryDelta(category=c.category, live=before.accuracy, candidate=c.accuracy,
                      delta=round(c.accuracy - before.accuracy, 6),
                      answered=min(c.answered, before.answered))
        for c in candidate.categories if (before := live_by.get(c.category)) is not None
    )  # fmt: skip
    return ExamEvidence(
        job_id=result.job_id, revision=revision, dataset=result.dataset, pairs=pair.pairs,
        live_accuracy=live.accuracy, candidate_accuracy=candidate.accuracy,
        accuracy_delta=pair.delta, candidate_only=pair.treatment_only,
        live_only=pair.baseline_only, p_value=pair.p_value, categories=categories,
    )  # fmt: skip


METRICS: dict[str, Callable[[ExamEvidence], float]] = {
    "accuracy_delta": lambda e: e.accuracy_delta,
    "candidate_accuracy": lambda e: e.candidate_accuracy,
    "live_accuracy": lambda e: e.live_accuracy,
    "worst_category_delta": lambda e: e.worst_category_delta,
    "p_value": lambda e: e.p_value,
    "pairs": lambda e: float(e.pairs),
}
"""What a gate condition may test; accuracies and deltas are fractions (``1pp`` is 0.01)."""

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}  # fmt: skip
_CONDITION = re.compile(
    r"^\s*(?P<metric>[a-z_]+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*"
    r"(?P<unit>pp|%)?\s*$"
)
MAX_GATE_CHARS = 500


class GateError(Hinted):
    """A gate that cannot be read."""


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    threshold: float
    text: str

    def holds(self, evidence: ExamEvidence) -> tuple[bool, float]:
        value = METRICS[self.metric](evidence)
        return _COMPARE[self.op](round(value, 9), round(self.threshold, 9)), value


@dataclass(frozen=True, slots=True)
class Gate:
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, text: str) -> Gate:
        """``accuracy_delta >= -1pp and p_value > 0.05``: conditions joined by ``and`` or ``,``;
        ``pp`` and ``%`` are percentage points of an accuracy."""
        if len(text) > MAX_GATE_CHARS:
            raise GateError(f"the gate is longer than {MAX_GATE_CHARS} characters",
                            "give a few conditions")  # fmt: skip
        parts = [p for p in re.split(r",|\band\b", text) if p.strip()]
        if not parts:
            raise GateError("the gate is empty", 'e.g. --require "accuracy_delta >= -1pp"')
        return cls(tuple(_condition(part) for part in parts))

    def check(self, evidence: ExamEvidence) -> list[tuple[Condition, float, bool]]:
        """Each condition with the evidence's value and whether it holds."""
        return [(c, value, ok) for c in self.conditions for ok, value in [c.holds(evidence)]]


def _condition(text: str) -> Condition:
    found = _CONDITION.match(text)
    known = ", ".join(METRICS)
    if found is None:
        raise GateError(f"cannot read the condition {text.strip()!r}",
                        f"write METRIC OP NUMBER[pp], e.g. accuracy_delta >= -1pp; "
                        f"metrics: {known}")  # fmt: skip
    metric = found["metric"]
    if metric not in METRICS:
        raise GateError(f"unknown metric {metric!r}", f"metrics: {known}")
    value = float(found["value"])
    if found["unit"]:
        value /= 100.0
    return Condition(metric, found["op"], value, text.strip())
