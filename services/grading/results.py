"""Scores of an exam job from its graded answers (pure; the store feeds it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import combinations

from services.grading.records import ExamAnswer, JobRecord
from services.grading.stats import mcnemar_exact, percentile, wilson_interval
from shared.events import (
    AnswerOutcome,
    CategoryScore,
    ExamResult,
    PairedComparison,
    Strategy,
    StrategyScore,
)


def score_strategies(
    answers: Iterable[ExamAnswer], strategies: Sequence[Strategy]
) -> tuple[StrategyScore, ...]:
    by_strategy: dict[Strategy, list[ExamAnswer]] = defaultdict(list)
    for answer in answers:
        by_strategy[answer.strategy].append(answer)
    return tuple(_score(strategy, by_strategy[strategy]) for strategy in strategies)


def _score(strategy: Strategy, answers: Sequence[ExamAnswer]) -> StrategyScore:
    correct = sum(a.correct for a in answers)
    low, high = wilson_interval(correct, len(answers))
    latencies = [a.latency_ms for a in answers if a.outcome is not AnswerOutcome.ERROR]
    per_category: dict[str, list[bool]] = defaultdict(list)
    for answer in answers:
        if answer.category:
            per_category[answer.category].append(answer.correct)
    return StrategyScore(
        strategy=strategy,
        answered=len(answers),
        correct=correct,
        invalid=sum(a.outcome is AnswerOutcome.INVALID for a in answers),
        errors=sum(a.outcome is AnswerOutcome.ERROR for a in answers),
        accuracy=correct / len(answers) if answers else 0.0,
        ci_low=low,
        ci_high=high,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        categories=tuple(
            _category(name, hits)
            for name, hits in sorted(_largest(per_category), key=lambda item: _natural(item[0]))
        ),
    )


MAX_CATEGORIES = 200
"""Categories reported per strategy (the largest): an exam file may give every question its own
category, and the result event must stay publishable."""


def _largest(per_category: dict[str, list[bool]]) -> list[tuple[str, list[bool]]]:
    by_size = sorted(per_category.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(name[:200], hits) for name, hits in by_size[:MAX_CATEGORIES]]


def _category(name: str, hits: Sequence[bool]) -> CategoryScore:
    correct = sum(hits)
    low, high = wilson_interval(correct, len(hits))
    return CategoryScore(category=name, answered=len(hits), correct=correct,
                         accuracy=correct / len(hits), ci_low=low, ci_high=high)  # fmt: skip


def compare_strategies(
    answers: Iterable[ExamAnswer], strategies: Sequence[Strategy]
) -> tuple[PairedComparison, ...]:
    """Every later strategy against every earlier one (the first is the baseline), on the
    questions both answered."""
    correct: dict[Strategy, dict[str, bool]] = defaultdict(dict)
    for answer in answers:
        correct[answer.strategy][answer.question_id] = answer.correct
    comparisons = []
    for baseline, treatment in combinations(strategies, 2):
        paired = correct[baseline].keys() & correct[treatment].keys()
        if not paired:
            continue
        base_only = sum(correct[baseline][q] and not correct[treatment][q] for q in paired)
        treat_only = sum(correct[treatment][q] and not correct[baseline][q] for q in paired)
        comparisons.append(
            PairedComparison(
                baseline=baseline,
                treatment=treatment,
                pairs=len(paired),
                delta=(treat_only - base_only) / len(paired),
                treatment_only=treat_only,
                baseline_only=base_only,
                p_value=mcnemar_exact(base_only, treat_only),
            )
        )
    return tuple(comparisons)


def exam_result(record: JobRecord, answers: Sequence[ExamAnswer], *, final: bool) -> ExamResult:
    """The job's result event: final when every item is answered (or the job failed)."""
    job = record.job
    end = record.finished_at or datetime.now(UTC)
    elapsed = max((end - record.started_at).total_seconds(), 0.0)
    return ExamResult(
        job_id=job.job_id,
        tenant=job.tenant,
        task=job.task,
        dataset=record.dataset_name,
        backend=job.backend,
        model=job.model,
        status=record.status,
        error=record.error,
        total_questions=record.total_questions,
        total_answers=record.total_answers,
        answered=len(answers),
        final=final,
        scores=score_strategies(answers, job.strategies),
        comparisons=compare_strategies(answers, job.strategies),
        started_at=record.started_at,
        elapsed_s=elapsed,
        answers_per_s=len(answers) / elapsed if elapsed > 0 else 0.0,
    )


def _natural(name: str) -> tuple[int, str]:
    """Categories in natural order: "k=10" before "k=80", then by name."""
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else -1, name)
