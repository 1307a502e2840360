"""Grade one reply: which option it chose and whether that is the expected one."""

from __future__ import annotations

from services.grading.datasets import ExamQuestion
from services.grading.extract import choice_from_logprobs, extract_choice
from services.grading.judge.client import Verdict
from services.grading.records import ExamAnswer
from shared.events import AnswerOutcome, ChatResponse, ExamJob, ScoredBy, Strategy

RAW_TEXT_KEPT = 2000


def grade(
    job: ExamJob,
    question: ExamQuestion,
    strategy: Strategy,
    response: ChatResponse,
    *,
    attempts: int,
) -> ExamAnswer:
    chosen: str | None = None
    scored_by = ScoredBy.NONE
    if response.ok:
        if job.scoring != "text":
            chosen = choice_from_logprobs(response.option_logprobs, question.letters)
            if chosen is not None:
                scored_by = ScoredBy.LOGPROBS
        if chosen is None and job.scoring != "logprobs":
            chosen = extract_choice(response.text, question.options)
            scored_by = ScoredBy.TEXT
    return _from_reply(question, strategy, response, response.ok, chosen, scored_by, attempts)


def grade_open(
    question: ExamQuestion,
    strategy: Strategy,
    response: ChatResponse,
    verdict: Verdict | None,
    *,
    attempts: int,
) -> ExamAnswer:
    """An open task graded by a judge: correct when the verdict is the question's ``answer``
    (course correction: "yes"); None verdict (error reply) is an error, an unparseable one
    invalid."""
    judged = verdict is not None
    chosen = verdict.label if verdict is not None else None
    return _from_reply(question, strategy, response, judged, chosen,
                       ScoredBy.JUDGE if judged else ScoredBy.NONE, attempts)  # fmt: skip


def grade_scored(
    question: ExamQuestion,
    strategy: Strategy,
    response: ChatResponse,
    verdict: str | None,
    *,
    attempts: int,
) -> ExamAnswer:
    """An open task graded from a score (aspects: "good" or "poor"): an error reply is an error,
    no verdict (unreadable judge reply) invalid."""
    scored_by = ScoredBy.JUDGE if response.ok else ScoredBy.NONE
    return _from_reply(question, strategy, response, response.ok, verdict, scored_by, attempts)


def _from_reply(
    question: ExamQuestion,
    strategy: Strategy,
    response: ChatResponse,
    replied: bool,
    chosen: str | None,
    scored_by: ScoredBy,
    attempts: int,
) -> ExamAnswer:
    """``replied`` False: an error (no usable reply); else invalid, correct or wrong."""
    if not replied:
        outcome = AnswerOutcome.ERROR
    elif chosen is None:
        outcome = AnswerOutcome.INVALID
    else:
        outcome = AnswerOutcome.CORRECT if chosen == question.answer else AnswerOutcome.WRONG
    return ExamAnswer(
        question_id=question.question_id,
        strategy=strategy,
        expected=question.answer,
        chosen=chosen,
        outcome=outcome,
        scored_by=scored_by,
        category=question.category,
        raw_text=(response.text if response.ok else str(response.error))[:RAW_TEXT_KEPT],
        grounded_in=response.grounded_in,
        latency_ms=response.timings.total_ms,
        attempts=attempts,
        model=response.model[:512],
    )


def lost(question: ExamQuestion, strategy: Strategy, attempts: int) -> ExamAnswer:
    """The item got no reply in any of its attempts."""
    return ExamAnswer(
        question_id=question.question_id,
        strategy=strategy,
        expected=question.answer,
        chosen=None,
        outcome=AnswerOutcome.ERROR,
        scored_by=ScoredBy.NONE,
        category=question.category,
        raw_text=f"no reply after {attempts} attempts",
        attempts=attempts,
    )
