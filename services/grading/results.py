"""Scores of an exam job from its graded answers (pure; the store feeds it)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import combinations

from services.grading.records import ExamAnswer, JobRecord
from services.grading.stats import mcnemar_exact, mean_interval, percentile, wilson_interval
from shared.events import (
    AnswerOutcome,
    AspectScore,
    CategoryScore,
    ExamResult,
    ExamTask,
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
    rewards = [a.reward for a in answers if a.reward is not None]
    mean, reward_low, reward_high = mean_interval(rewards)
    return StrategyScore(
        mean_reward=mean if rewards else None,
        reward_ci_low=reward_low if rewards else None,
        reward_ci_high=reward_high if rewards else None,
        aspects=_aspects(answers),
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


def _aspects(answers: Sequence[ExamAnswer]) -> tuple[AspectScore, ...]:
    """Per aspect: the mean score over the answers the judge scored on it, by name."""
    per_aspect: dict[str, list[float]] = defaultdict(list)
    for answer in answers:
        for aspect, score in answer.aspect_scores.items():
            per_aspect[aspect].append(float(score))
    scores = []
    for aspect, values in sorted(per_aspect.items()):
        mean, low, high = mean_interval(values)
        scores.append(
            AspectScore(aspect=aspect, answers=len(values), mean=mean, ci_low=low, ci_high=high)
        )
    return tuple(scores)


MAX_CATEGORIES = 200
"""Categories reported per strategy (the largest): an exam file may give every question its own
category, and the result event must stay publishable."""


def _largest(per_category: dict[str, list[bool]]) -> list[tuple[str, list[bool]]]:
    by_size = sorted(per_category.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(name[:200], hits) for name, hits in by_size[:MAX_CATEGORIES]]


def _category(name: str, hits: Sequence[bool]) -> CategoryScore:
    correct = sum(hits)
    low, high = wilson_interval(correct, len(hits))
    return CategoryScore(
        category=name,
        answered=len(hits),
        correct=correct,
        accuracy=correct / len(hits),
        ci_low=low,
        ci_high=high,
    )


def compare_rewards(
    answers: Iterable[ExamAnswer], strategies: Sequence[Strategy]
) -> tuple[PairedComparison, ...]:
    """Aspects task: every later strategy against every earlier one on the questions both got
    a reward for: mean difference with its 95% interval, exact sign test."""
    rewards: dict[Strategy, dict[str, float]] = defaultdict(dict)
    for answer in answers:
        if answer.reward is not None:
            rewards[answer.strategy][answer.question_id] = answer.reward
    comparisons = []
    for baseline, treatment in combinations(strategies, 2):
        paired = sorted(rewards[baseline].keys() & rewards[treatment].keys())
        if not paired:
            continue
        diffs = [rewards[treatment][q] - rewards[baseline][q] for q in paired]
        mean, low, high = mean_interval(diffs)
        higher, lower = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        comparisons.append(
            PairedComparison(
                baseline=baseline,
                treatment=treatment,
                pairs=len(paired),
                delta=mean,
                treatment_only=higher,
                baseline_only=lower,
                p_value=mcnemar_exact(lower, higher),
                metric="reward",
                delta_ci_low=low,
                delta_ci_high=high,
            )
        )
    return tuple(comparisons)


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
        # The per-question differences (+1, 0, -1): their mean is the delta, and their t
        # interval the paired 95% interval of it.
        diffs = [float(correct[treatment][q]) - float(correct[baseline][q]) for q in paired]
        _, low, high = mean_interval(diffs)
        comparisons.append(
            PairedComparison(
                baseline=baseline,
                treatment=treatment,
                pairs=len(paired),
                delta=(treat_only - base_only) / len(paired),
                treatment_only=treat_only,
                baseline_only=base_only,
                p_value=mcnemar_exact(base_only, treat_only),
                delta_ci_low=low,
                delta_ci_high=high,
            )
        )
    return tuple(comparisons)


def answered_by(answers: Sequence[ExamAnswer]) -> str | None:
    """The models that answered (a job naming none gets the service's), most answers first."""
    counts = Counter(a.model for a in answers if a.model)
    return ", ".join(name for name, _ in counts.most_common()) or None


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
        model=job.model or answered_by(answers),
        status=record.status,
        error=record.error,
        total_questions=record.total_questions,
        total_answers=record.total_answers,
        answered=len(answers),
        final=final,
        scores=score_strategies(answers, job.strategies),
        comparisons=(compare_rewards if job.task is ExamTask.ASPECTS else compare_strategies)(
            answers, job.strategies
        ),
        started_at=record.started_at,
        elapsed_s=elapsed,
        answers_per_s=len(answers) / elapsed if elapsed > 0 else 0.0,
    )


def _natural(name: str) -> tuple[int, str]:
    """Categories in natural order: "k=10" before "k=80", then by name."""
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else -1, name)
