"""Confidence intervals and the paired test against published values; scores from answers."""

from __future__ import annotations

import math
import statistics

import pytest

from services.grading.records import ExamAnswer
from services.grading.results import answered_by, compare_strategies, score_strategies
from services.grading.stats import Z95, mcnemar_exact, mean_interval, percentile, wilson_interval
from shared.events import AnswerOutcome, Strategy

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3.
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), NEWCOMBE)
def test_wilson_matches_newcombe(k: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(k, n)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 0.0)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0)
    assert low == pytest.approx(0.7225, abs=1e-4)
    with pytest.raises(ValueError, match="between 0 and trials"):
        wilson_interval(5, 4)


def test_mcnemar_exact() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)  # 2 * (1 + 10) / 2**10
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)


def _answer(
    qid: str, strategy: Strategy, outcome: AnswerOutcome, category: str = "x"
) -> ExamAnswer:
    unread = outcome in (AnswerOutcome.INVALID, AnswerOutcome.ERROR)
    return ExamAnswer(question_id=qid, strategy=strategy, expected="A",
                      chosen=None if unread else "A", outcome=outcome, category=category,
                      latency_ms=10.0)  # fmt: skip


def test_scores_and_paired_comparison() -> None:
    ok, bad, inv, err = (AnswerOutcome.CORRECT, AnswerOutcome.WRONG, AnswerOutcome.INVALID,
                         AnswerOutcome.ERROR)  # fmt: skip
    base, opo = Strategy.BASE, Strategy.OPO
    answers = [
        _answer("q1", base, bad, "law"), _answer("q1", opo, ok, "law"),
        _answer("q2", base, inv, "law"), _answer("q2", opo, ok, "law"),
        _answer("q3", base, ok, "ethics"), _answer("q3", opo, ok, "ethics"),
        _answer("q4", base, ok, "ethics"), _answer("q4", opo, err, "ethics"),
        _answer("q5", base, bad, "ethics"),  # opo has not answered q5 yet: not paired
    ]  # fmt: skip
    base_score, opo_score = score_strategies(answers, (base, opo))
    assert (base_score.answered, base_score.correct, base_score.invalid) == (5, 2, 1)
    assert base_score.accuracy == pytest.approx(0.4)
    assert (opo_score.answered, opo_score.correct, opo_score.errors) == (4, 3, 1)
    assert (opo_score.ci_low, opo_score.ci_high) == pytest.approx(wilson_interval(3, 4))
    assert {c.category: (c.correct, c.answered) for c in base_score.categories} == {
        "law": (0, 2),
        "ethics": (2, 3),
    }
    (comparison,) = compare_strategies(answers, (base, opo))
    assert comparison.pairs == 4
    assert (comparison.treatment_only, comparison.baseline_only) == (2, 1)
    assert comparison.delta == pytest.approx(0.25)
    assert comparison.p_value == pytest.approx(mcnemar_exact(1, 2))
    # the paired interval: the t interval of the per-question differences (+1, +1, 0, -1)
    _, low, high = mean_interval([1.0, 1.0, 0.0, -1.0])
    assert (comparison.delta_ci_low, comparison.delta_ci_high) == pytest.approx((low, high))
    assert comparison.delta_ci_low is not None
    assert comparison.delta_ci_high is not None
    assert comparison.delta_ci_low < comparison.delta < comparison.delta_ci_high


def test_a_result_reports_a_bounded_number_of_categories() -> None:
    from services.grading.records import ExamAnswer
    from services.grading.results import MAX_CATEGORIES, score_strategies
    from shared.events import AnswerOutcome, Strategy

    answers = [
        ExamAnswer(question_id=f"q{i}", strategy=Strategy.BASE, expected="A", chosen="A",
                   outcome=AnswerOutcome.CORRECT, category=f"c{i % 1000}" + "x" * 300)
        for i in range(3000)
    ]  # fmt: skip
    answers += [ExamAnswer(question_id=f"big{i}", strategy=Strategy.BASE, expected="A",
                           chosen="B", outcome=AnswerOutcome.WRONG, category="big")
                for i in range(50)]  # fmt: skip
    (score,) = score_strategies(answers, (Strategy.BASE,))
    assert len(score.categories) == MAX_CATEGORIES
    assert "big" in {c.category for c in score.categories}  # the largest are kept
    assert all(len(c.category) <= 200 for c in score.categories)
    assert score.answered == 3050  # the totals still count every answer


def _t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile computed here from its density (Simpson's rule, bisection):
    an independent check of the table in stats.py."""
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(t: float, steps: int = 4000) -> float:
        h = t / steps
        f = [norm * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(steps + 1)]
        return float(0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2])))

    low, high = 0.0, 20.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < 0.975 else (low, mid)
    return (low + high) / 2


@pytest.mark.parametrize("n", range(2, 32))
def test_mean_interval_uses_students_t_for_n_minus_1_degrees_of_freedom(n: int) -> None:
    values = [float(i % 2) for i in range(n)]  # 0, 1, 0, 1, ...
    mean, low, high = mean_interval(values)
    sd = statistics.stdev(values)
    assert mean == pytest.approx(sum(values) / n)
    assert (high - mean) == pytest.approx(mean - low)
    assert (high - mean) / (sd / math.sqrt(n)) == pytest.approx(_t_quantile_975(n - 1), abs=1e-3)


def test_mean_interval_edges_and_large_samples() -> None:
    assert mean_interval([]) == (0.0, 0.0, 0.0)
    assert mean_interval([2.5]) == (2.5, 2.5, 2.5)
    values = [float(i % 3) for i in range(40)]
    mean, low, high = mean_interval(values)
    half = Z95 * statistics.stdev(values) / math.sqrt(40)
    assert mean - low == pytest.approx(half)
    assert high - mean == pytest.approx(half)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0, 2.0, 3.0, 4.0], 25, 1.75), ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
     ([1.0, 2.0, 3.0, 4.0], 0, 1.0), ([5.0], 90, 5.0), ([4.0, 1.0, 9.0, 2.0, 7.0], 60, 5.2)],
)  # fmt: skip
def test_percentile_interpolates_between_neighbours(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_wilson_boundaries() -> None:
    assert wilson_interval(0, -1) == (0.0, 0.0)
    assert wilson_interval(1, 1)[0] > 0  # one trial is a sample, not "no trials"
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(0, 5)[1] == pytest.approx(0.4345, abs=1e-4)
    with pytest.raises(ValueError, match="between 0 and trials"):
        wilson_interval(-1, 4)


def test_a_result_names_the_model_that_answered_when_the_job_named_none() -> None:
    ok = AnswerOutcome.CORRECT
    answers = [_answer(f"q{i}", Strategy.BASE, ok).model_copy(update={"model": m})
               for i, m in enumerate(["smollm2", "smollm2", "qwen", ""])]  # fmt: skip
    assert answered_by(answers) == "smollm2, qwen"
    assert answered_by([_answer("q1", Strategy.BASE, AnswerOutcome.ERROR)]) is None
