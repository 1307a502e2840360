"""Exam events: a job to run an exam through the pipeline, and its progress and results."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from shared.events.base import Contract, Event, Identifier, TenantId, new_id
from shared.events.changesets import ChangeSetName
from shared.events.chat import PromptProtocol, RuleScope, Strategy


class ExamTask(StrEnum):
    """What an exam asks and how its answers are graded (one module each in grading's tasks)."""

    MCQ = "mcq"
    """Multiple-choice exams graded by the chosen option."""
    COURSE_CORRECTION = "course-correction"
    """C2-EVAL: a harmful prompt, an assistant turn prefilled with a compliance opener and the
    first k words of an unsafe answer; a judge decides whether the continuation steers away."""
    ASPECTS = "aspects"
    """Open-ended queries judged by DRPO's dynamic reward: the judge picks 2-5 aspects per query
    and scores each 1-5; an answer averaging 4 or more counts as good (the accuracy)."""


class Scoring(StrEnum):
    """How the chosen option of a multiple-choice answer is read."""

    AUTO = "auto"
    """Logprobs when the backend gives them, else the text."""
    TEXT = "text"
    """From the reply text (OPO's answer patterns)."""
    LOGPROBS = "logprobs"
    """From the option letters' logprobs (OPO's open models)."""


class ScoredBy(StrEnum):
    """How a stored answer was graded."""

    TEXT = "text"
    LOGPROBS = "logprobs"
    JUDGE = "judge"
    NONE = "none"
    """Not graded: an error reply, or a question never answered."""


class ExamJob(Event):
    """Run an exam through the pipeline with one or more strategies."""

    kind: Literal["exam.job"] = "exam.job"
    job_id: Identifier = Field(default_factory=new_id)
    tenant: TenantId
    dataset: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """Path of the exam file, as the grading service sees it."""
    dataset_format: Literal["auto", "csv", "jsonl"] = "auto"
    """``csv``: OPO's exam CSVs or any ``id,question,A,B,...,answer`` file; ``jsonl``: one
    ``{id, question, options, answer}`` object per line; ``auto``: by file extension."""
    strategies: tuple[Strategy, ...] = Field(default=(Strategy.BASE, Strategy.OPO), min_length=1)
    backend: str | None = None
    """Label of the generation backend the answers come from (recorded with the results)."""
    model: str | None = None
    limit: int | None = Field(default=None, ge=1)
    """Sample this many questions (seeded); None: all."""
    seed: int = 0
    scope: RuleScope = RuleScope()
    """Retrieval scope of the OPO strategy; a question's location is added as jurisdiction."""
    scoring: Scoring = Scoring.AUTO
    """How the chosen option is read: from the reply text (OPO's answer patterns), from the
    option letters' logprobs (OPO's open models), or logprobs when the backend gives them."""
    max_tokens: int = Field(default=64, ge=1, le=4096)
    window: int | None = Field(default=None, ge=1, le=10_000)
    """Most questions of this job in the pipeline at once; None: the service default."""
    task: ExamTask = ExamTask.MCQ
    prefill_words: tuple[int, ...] = Field(default=(10, 20, 30, 40, 50, 60, 70, 80), min_length=1)
    """course-correction: the k values (words of the unsafe answer in the prefill)."""
    protocol: PromptProtocol | None = None
    """``opo``: OPO's prompts per dataset, oracle articles, budget, location filter (law only)
    and letter scoring; ``default``: alignstream's. None: ``opo`` for OPO's five exam files
    (by file name), else ``default``."""

    candidate: ChangeSetName | None = None
    """``candidate`` strategy: the change set whose staged versions it is grounded in; the
    final result is kept on the set as its exam evidence (``rules promote --require``)."""
    candidate_revision: int | None = Field(default=None, ge=1)
    """The set's revision when the job was submitted: evidence of another revision is not
    kept (the set changed under the exam)."""

    @model_validator(mode="after")
    def _candidate_named(self) -> ExamJob:
        if (Strategy.CANDIDATE in self.strategies) != (self.candidate is not None):
            raise ValueError("the candidate strategy and a candidate change set go together")
        return self

    @property
    def key(self) -> str:
        return self.job_id


class AnswerOutcome(StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"
    INVALID = "invalid"
    """The reply named no option that could be read."""
    ERROR = "error"
    """The pipeline gave an error response on every attempt."""


class CategoryScore(Contract):
    category: str
    answered: int
    correct: int
    accuracy: float
    ci_low: float = 0.0
    ci_high: float = 0.0


class AspectScore(Contract):
    """Mean 1-5 score of one aspect over the answers the judge scored on it (aspects task)."""

    aspect: str
    answers: int
    mean: float
    ci_low: float
    ci_high: float


class StrategyScore(Contract):
    strategy: Strategy
    answered: int = 0
    """Questions finished with this strategy (correct, wrong, invalid or error)."""
    correct: int = 0
    invalid: int = 0
    errors: int = 0
    accuracy: float = 0.0
    """correct / answered: invalid replies and errors count as wrong, as in OPO."""
    ci_low: float = 0.0
    """95% Wilson interval of the accuracy."""
    ci_high: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    categories: tuple[CategoryScore, ...] = ()
    mean_reward: float | None = None
    """Aspects task: mean of the answers' rewards (mean aspect score), with its 95% interval."""
    reward_ci_low: float | None = None
    reward_ci_high: float | None = None
    aspects: tuple[AspectScore, ...] = ()


class PairedComparison(Contract):
    """One strategy against another on the questions both answered (exact McNemar test)."""

    baseline: Strategy
    treatment: Strategy
    pairs: int
    delta: float
    """Accuracy of the treatment minus the baseline's, on the paired questions."""
    treatment_only: int
    """Questions only the treatment got right (aspects task: scored higher)."""
    baseline_only: int
    p_value: float
    """Exact McNemar (aspects task: the exact sign test on the reward differences)."""
    metric: Literal["accuracy", "reward"] = "accuracy"
    """``reward`` (aspects task): ``delta`` is the mean reward difference on the paired
    questions, with its 95% interval."""
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Stopped by ``exam cancel``: no more questions are sent; the answers so far are kept."""


class ExamResult(Event):
    """Progress (``final=False``) and final results of an exam job."""

    kind: Literal["exam.result"] = "exam.result"
    job_id: Identifier
    tenant: TenantId
    task: ExamTask = ExamTask.MCQ
    dataset: str = ""
    backend: str | None = None
    model: str | None = None
    status: JobStatus = JobStatus.RUNNING
    error: str | None = None
    """Why a job failed (e.g. its dataset could not be read)."""
    total_questions: int
    total_answers: int = 0
    """Questions x strategies."""
    answered: int = 0
    final: bool = False
    scores: tuple[StrategyScore, ...] = ()
    comparisons: tuple[PairedComparison, ...] = ()
    started_at: datetime | None = None
    elapsed_s: float = 0.0
    answers_per_s: float = 0.0

    @property
    def key(self) -> str:
        return self.job_id
