"""What the grading service keeps per job: the job's record, its work items and their answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.events import (
    AnswerOutcome,
    Contract,
    ExamJob,
    Identifier,
    JobStatus,
    RuleRef,
    ScoredBy,
    Strategy,
)

ITEM_SEPARATOR = "|"


class JobRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    job: ExamJob
    dataset_name: str
    status: JobStatus
    total_questions: int
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    nonce: str = Field(default="", repr=False, exclude=True)
    """The job's secret: its items are asked (and answers accepted) only under ids derived
    from it (``asking.request_id_for``). Empty for jobs stored before it existed."""

    @property
    def sid(self) -> str:
        """The job's id in the store (``scoped_id``)."""
        return scoped_id(self.job.tenant, self.job.job_id)

    @property
    def total_answers(self) -> int:
        return self.total_questions * len(self.job.strategies)


def scoped_id(tenant: str, job_id: str) -> str:
    """A job's id in the store: unique per tenant (tenant ids hold no ``:``), so tenants
    choosing the same job id never share a job."""
    return f"{tenant}:{job_id}"


class WorkItem(NamedTuple):
    """One unit of work of a job: a question asked with one strategy. Stored in Redis and
    echoed in the request's metadata as ``str(item)`` (``strategy|question_id``)."""

    strategy: Strategy
    question_id: str

    def __str__(self) -> str:
        return f"{self.strategy.value}{ITEM_SEPARATOR}{self.question_id}"


def item_of(strategy: Strategy, question_id: str) -> WorkItem:
    return WorkItem(strategy, question_id)


def parse_item(item: str | bytes) -> WorkItem:
    """The work item written as ``item``; ValueError when it is not one."""
    text = item.decode() if isinstance(item, bytes) else item
    strategy, separator, question_id = text.partition(ITEM_SEPARATOR)
    if not separator or not question_id:
        raise ValueError(f"not an exam item: {text[:200]!r}")
    return WorkItem(Strategy(strategy), question_id)


class ExamAnswer(Contract):
    """One graded answer of an exam job, stored per job and work item (a Redis record, not a
    wire event: results on ``exam.results`` carry only the scores)."""

    question_id: Identifier
    strategy: Strategy
    expected: str
    chosen: str | None
    """The extracted option; None when the reply could not be parsed."""
    outcome: AnswerOutcome
    scored_by: ScoredBy = ScoredBy.TEXT
    category: str | None = None
    raw_text: Annotated[str, StringConstraints(max_length=4000)] = ""
    grounded_in: tuple[RuleRef, ...] = ()
    latency_ms: float = 0.0
    attempts: int = 1
    model: Annotated[str, StringConstraints(max_length=512)] = ""
    """The model that answered, as generation names it ('' for an error, or answers stored
    before it was kept)."""
    aspect_scores: dict[str, int] = Field(default_factory=dict)
    """Aspects task: the judge's 1-5 score per aspect it chose for the query."""
    reward: float | None = None
    """Aspects task: the mean of ``aspect_scores`` (None: not scored)."""

    @property
    def correct(self) -> bool:
        return self.outcome is AnswerOutcome.CORRECT
