"""Exam results as a Markdown report and a PNG chart (JSON is the event itself)."""

from __future__ import annotations

from pathlib import Path

from shared.events import ExamResult


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def to_markdown(result: ExamResult) -> str:
    lines = [
        f"# Exam {result.dataset} ({result.job_id})",
        "",
        f"tenant {result.tenant}; {result.total_questions} questions; "
        f"model {result.model or 'service default'}; status {result.status.value}; "
        f"{result.answered}/{result.total_answers} answers in {result.elapsed_s:.1f} s "
        f"({result.answers_per_s:.2f}/s)",
        "",
    ]
    if result.error:
        lines += [f"**failed:** {result.error}", ""]
    lines += [
        "| strategy | accuracy % | 95% CI | correct / answered | invalid | errors "
        "| p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in result.scores:
        lines.append(
            f"| {s.strategy.value} | {pct(s.accuracy)} | {pct(s.ci_low)}-{pct(s.ci_high)} "
            f"| {s.correct} / {s.answered} | {s.invalid} | {s.errors} "
            f"| {s.latency_p50_ms:.0f} | {s.latency_p95_ms:.0f} |"
        )
    if result.comparisons:
        lines += [
            "",
            "| comparison | pairs | delta (pp) | only treatment right | only baseline right "
            "| p (exact McNemar) |",
            "|---|---|---|---|---|---|",
        ]
        for c in result.comparisons:
            lines.append(
                f"| {c.treatment.value} vs {c.baseline.value} | {c.pairs} | {100 * c.delta:+.1f} "
                f"| {c.treatment_only} | {c.baseline_only} | {c.p_value:.3g} |"
            )
    rows = category_rows(result)
    if rows:
        header = " | ".join(s.strategy.value for s in result.scores)
        lines += ["", f"| category | {header} |", "|---" * (len(result.scores) + 1) + "|"]
        lines += [f"| {name} | {' | '.join(cells)} |" for name, cells in rows]
    return "\n".join(lines) + "\n"


def category_rows(result: ExamResult) -> list[tuple[str, list[str]]]:
    """Per category: "accuracy% (answered)" for each strategy, "-" where it has none."""
    rows = []
    for name in sorted({c.category for s in result.scores for c in s.categories}):
        cells = []
        for s in result.scores:
            found = next((c for c in s.categories if c.category == name), None)
            cells.append(f"{pct(found.accuracy)} ({found.answered})" if found else "-")
        rows.append((name, cells))
    return rows


def plot_png(result: ExamResult, path: Path) -> Path:
    """Accuracy per strategy with 95% Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = [s.strategy.value for s in result.scores]
    accuracy = [100 * s.accuracy for s in result.scores]
    below = [100 * (s.accuracy - s.ci_low) for s in result.scores]
    above = [100 * (s.ci_high - s.accuracy) for s in result.scores]
    figure, axes = plt.subplots(figsize=(1.6 * len(names) + 2.5, 3.6), dpi=120)
    bars = axes.bar(names, accuracy, yerr=[below, above], capsize=6, color="#4C72B0")
    for bar, value in zip(bars, accuracy, strict=True):
        axes.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value),
                      xytext=(0, 3), textcoords="offset points", ha="center")  # fmt: skip
    axes.set_ylim(0, 105)
    axes.set_ylabel("accuracy % (95% CI)")
    axes.set_title(f"{result.dataset}: {result.total_questions} questions")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def export(result: ExamResult, folder: Path) -> list[Path]:
    """``result.json``, ``result.md`` and ``result.png`` in the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "result.json", folder / "result.md"
    json_path.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(result), encoding="utf-8")
    return [json_path, md_path, plot_png(result, folder / "result.png")]
