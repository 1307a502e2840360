"""``alignstream exam run|show|list|cancel``: exam jobs through the pipeline and their results."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Column, Table

from services.cli.changeset_exam import (
    CANDIDATE_ARMS,
    candidate_revision,
    replay_requests,
    show_evidence,
)
from services.cli.exam_generate import generate
from services.cli.following import following
from services.cli.groups import command_group
from services.cli.params import set_name, tenant_option
from services.cli.progress import console, errors, progress_bar
from services.grading.datasets import stage_dataset
from services.grading.queries import ExamJobs
from services.grading.records import JobRecord
from services.grading.report import category_rows, export, pct
from services.grading.settings import GradingSettings
from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings, RedisSettings
from shared.strategies import by_name
from shared.topics import EXAM_RESULTS

app = command_group("Run exams through the pipeline and show their results.")

app.command()(generate)


def parse_strategies(value: str) -> tuple[events.Strategy, ...]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    found = {name: by_name(name) for name in names}
    unknown = [name for name, strategy in found.items() if strategy is None]
    if unknown or not names:
        raise typer.BadParameter(f"unknown {unknown}; choose from {', '.join(events.Strategy)}")
    return tuple(dict.fromkeys(s for s in found.values() if s is not None))


def show_result(result: events.ExamResult) -> None:
    title = (f"{result.dataset}: {result.total_questions} questions, "
             f"{result.answered}/{result.total_answers} answers, {result.status.value}, "
             f"{result.elapsed_s:.1f} s ({result.answers_per_s:.2f} answers/s)")  # fmt: skip
    if result.error:
        console.print(f"[red]job {result.job_id} failed: {result.error}[/]")
        return
    table = Table("strategy", "accuracy %", "95% CI", "correct", "answered", "invalid", "errors",
                  "p50 ms", title=title)  # fmt: skip
    for s in result.scores:
        table.add_row(s.strategy.value, pct(s.accuracy), f"{pct(s.ci_low)}-{pct(s.ci_high)}",
                      str(s.correct), str(s.answered), str(s.invalid), str(s.errors),
                      f"{s.latency_p50_ms:.0f}")  # fmt: skip
    console.print(table)
    if result.task == events.ExamTask.ASPECTS:
        show_aspects(result)
        return
    if result.comparisons:
        paired = Table("comparison", "pairs", "delta pp", "95% CI pp", "only treatment right",
                       "only baseline right", "p (McNemar)")  # fmt: skip
        for c in result.comparisons:
            low, high = c.delta_ci_low, c.delta_ci_high
            interval = (
                "-" if low is None or high is None else f"{100 * low:+.1f} to {100 * high:+.1f}"
            )
            paired.add_row(f"{c.treatment.value} vs {c.baseline.value}", str(c.pairs),
                           f"{100 * c.delta:+.1f}", interval, str(c.treatment_only),
                           str(c.baseline_only), f"{c.p_value:.3g}")  # fmt: skip
        console.print(paired)
    if result.task is events.ExamTask.COURSE_CORRECTION:
        show_corr_at_k(result)
        return
    rows = category_rows(result)
    if 1 < len(rows) <= 40:
        by_category = Table("category", *(s.strategy.value for s in result.scores))
        for name, cells in rows:
            by_category.add_row(name, *cells)
        console.print(by_category)


def show_aspects(result: events.ExamResult) -> None:
    """Aspects task: mean reward and per-aspect means (1-5) with 95% intervals, and each
    strategy against the earlier ones on the reward per query (paired)."""
    strategies = [s.strategy.value for s in result.scores]
    table = Table("aspect", *strategies, title="aspect scores (1-5), mean [95% CI] (answers)")
    cells: dict[str, dict[str, str]] = {}
    for s in result.scores:
        if s.mean_reward is not None:
            cells.setdefault("reward (mean aspect score)", {})[s.strategy.value] = (
                f"{s.mean_reward:.2f} [{s.reward_ci_low:.2f}-{s.reward_ci_high:.2f}]"
            )
        for a in s.aspects:
            cells.setdefault(a.aspect, {})[s.strategy.value] = (
                f"{a.mean:.2f} [{a.ci_low:.2f}-{a.ci_high:.2f}] ({a.answers})"
            )
    for name, row in cells.items():
        table.add_row(name, *(row.get(strategy, "-") for strategy in strategies))
    console.print(table)
    if result.comparisons:
        paired = Table("comparison", "pairs", "reward delta", "95% CI", "higher", "lower",
                       "p (sign test)")  # fmt: skip
        for c in result.comparisons:
            interval = f"{c.delta_ci_low:+.2f} to {c.delta_ci_high:+.2f}"
            paired.add_row(f"{c.treatment.value} vs {c.baseline.value}", str(c.pairs),
                           f"{c.delta:+.2f}", interval, str(c.treatment_only),
                           str(c.baseline_only), f"{c.p_value:.3g}")  # fmt: skip
        console.print(paired)


def show_corr_at_k(result: events.ExamResult) -> None:
    """C2-EVAL: the share of continuations that course-correct, per k, with 95% intervals."""
    title = "course correction: Corr@k per k, then the mean"
    table = Table("strategy", "k", "Corr@k %", "95% CI", "corrected", "judged", title=title)
    for s in result.scores:
        for c in s.categories:
            interval = f"{pct(c.ci_low)}-{pct(c.ci_high)}"
            table.add_row(s.strategy.value, c.category.removeprefix("k="), pct(c.accuracy),
                          interval, str(c.correct), str(c.answered))  # fmt: skip
        table.add_row(s.strategy.value, "mean", pct(s.accuracy),
                      f"{pct(s.ci_low)}-{pct(s.ci_high)}", str(s.correct), str(s.answered),
                      style="bold")  # fmt: skip
    console.print(table)


def _export(result: events.ExamResult, out: Path | None) -> None:
    if out is not None:
        paths = export(result, out)
        console.print("written: " + ", ".join(str(p) for p in paths))


async def follow_job(
    client: AlignstreamClient, job: events.ExamJob, timeout_s: float
) -> events.ExamResult:
    with progress_bar() as bar:
        task = bar.add_task(f"exam {Path(job.dataset).name}", total=None)

        def on_progress(result: events.ExamResult) -> None:
            bar.update(task, total=result.total_answers, completed=result.answered)

        return await client.run_exam(job, timeout_s=timeout_s, on_progress=on_progress)


@app.command()
def run(
    dataset: str | None = typer.Option(
        None,
        help="Exam CSV or JSONL: a local file (copied into the tenant's folder of the grading "
        "data root, ALIGNSTREAM_GRADING_DATA_ROOT), or a name inside that folder.",
    ),
    tenant: str = tenant_option("Whose rule memory the OPO strategy searches."),
    strategy: str | None = typer.Option(
        None,
        help="Comma-separated: base, opo, oracle, drpo. Default: base,opo (opo with --candidate).",
    ),
    candidate: str | None = typer.Option(
        None,
        help="A staged change set: every question is also asked grounded in it (paired with "
        "live opo: McNemar, per-category deltas); the result is kept on the set for "
        "`rules promote --require`.",
    ),
    replay: str | None = typer.Option(
        None,
        help="With --candidate, instead of an exam: FROM..TO (ISO times, either may be empty) "
        "replays the tenant's recorded requests (audit log) and counts those the set would "
        "ground in different rules.",
    ),
    limit: int | None = typer.Option(None, min=1, help="Sample this many questions (seeded)."),
    seed: int = typer.Option(0),
    scoring: events.Scoring = typer.Option(events.Scoring.AUTO, help="How options are read."),
    max_tokens: int = typer.Option(64, min=1),
    window: int | None = typer.Option(None, min=1, help="Questions in flight for this job."),
    model: str | None = typer.Option(None, help="Label recorded with the results."),
    out: Path | None = typer.Option(None, help="Write result.json, result.md, result.png here."),
    timeout: float = typer.Option(3600.0, help="Seconds to wait for the job."),
    task: events.ExamTask = typer.Option(
        events.ExamTask.MCQ,
        help="mcq; course-correction (C2-EVAL; needs a judge); aspects (open queries scored on "
        "DRPO's aspects by the judge: a query file, one per line, JSON or JSONL).",
    ),
    k: str = typer.Option("10,20,30,40,50,60,70,80", help="course-correction: prefill words."),
    protocol: str = typer.Option(
        "auto",
        help="opo (OPO's paper protocol), opo-exact (also OPO's prompt joining and "
        "repetition penalty; the vLLM engine only), default, or auto: opo for OPO's five files.",
    ),
) -> None:
    """Submit an exam job (or a C2-EVAL course-correction job), show its progress, then its
    results. --limit samples questions (course correction: prompts, each at every k)."""
    if replay is not None:
        if candidate is None:
            raise typer.BadParameter("--replay needs --candidate NAME", param_hint="--replay")
        replay_requests(tenant, set_name(candidate), replay)
        return
    if dataset is None:
        raise typer.BadParameter("give the exam file (or --candidate NAME --replay FROM..TO)",
                                 param_hint="--dataset")  # fmt: skip
    strategies = parse_strategies(strategy or ("opo" if candidate else "base,opo"))
    revision = None
    if candidate is not None:
        candidate, revision = set_name(candidate), candidate_revision(tenant, candidate)
        strategies = (*(s for s in strategies if s not in CANDIDATE_ARMS), *CANDIDATE_ARMS)
    prefill_words = tuple(int(n) for n in k.split(",") if n.strip())
    if protocol not in ("auto", "default", "opo", "opo-exact"):
        raise typer.BadParameter("protocol must be auto, default, opo or opo-exact")
    local = Path(dataset)
    if local.is_file():  # the grading service reads only its data root: put the file there
        dataset = stage_dataset(GradingSettings().data_root, tenant, local)
    job = events.ExamJob(
        tenant=tenant, dataset=dataset, strategies=strategies, candidate=candidate,
        candidate_revision=revision,
        limit=limit, seed=seed, scoring=scoring, max_tokens=max_tokens,
        window=window, model=model, task=task, prefill_words=prefill_words,
        protocol=None if protocol == "auto" else protocol,
    )  # fmt: skip
    console.print(f"exam job [bold]{job.job_id}[/]")

    async def submit() -> events.ExamResult:
        async with AlignstreamClient(KafkaSettings()) as client:
            return await follow_job(client, job, timeout)

    result = following("exam", job.job_id, tenant, submit())
    show_result(result)
    if candidate is not None and revision is not None:
        show_evidence(result, candidate, revision)
    _export(result, out)
    if result.status is events.JobStatus.FAILED:
        raise typer.Exit(1)


async def _job_result(tenant: str, job_id: str) -> events.ExamResult:
    async with ExamJobs.connect(RedisSettings()) as jobs:
        return await jobs.result(tenant, job_id)


@app.command()
def show(
    job_id: str = typer.Argument(..., help="The job's id, or its start (see `exam list`)."),
    tenant: str = tenant_option("The tenant the job belongs to."),
    out: Path | None = typer.Option(None, help="Write result.json, result.md, result.png here."),
) -> None:
    """Results of one job so far (from Redis)."""
    result = asyncio.run(_job_result(tenant, job_id))
    show_result(result)
    _export(result, out)


async def _cancel(tenant: str, job_id: str) -> tuple[str, events.ExamResult | None]:
    """Cancel the job ``job_id`` names (or uniquely starts); publish its final result."""
    async with ExamJobs.connect(RedisSettings()) as jobs:
        record, result = await jobs.cancel(tenant, job_id)
    if result is not None:
        # Whoever follows the job (exam run in another terminal) sees it end.
        async with AlignstreamClient(KafkaSettings()) as client:
            await client.send(EXAM_RESULTS, result)
            await client.flush()
    return record.status.value, result


@app.command()
def cancel(
    job_id: str = typer.Argument(..., help="The job's id, or its start (see exam list)."),
    tenant: str = tenant_option("The tenant the job belongs to."),
) -> None:
    """Stop a running job: no more questions are sent, the answers so far are kept."""
    status, result = asyncio.run(_cancel(tenant, job_id))
    if result is None:
        errors.print(f"job {job_id} of {tenant} is {status} already; nothing to cancel")
        raise typer.Exit(1)
    console.print(f"job {result.job_id} cancelled after {result.answered}/{result.total_answers} "
                  "answers")  # fmt: skip


async def _recent(tenant: str, limit: int) -> list[JobRecord]:
    async with ExamJobs.connect(RedisSettings()) as jobs:
        return await jobs.recent(tenant, limit)


@app.command("list")
def list_jobs(
    tenant: str = tenant_option("Whose jobs to list."),
    limit: int = typer.Option(20, min=1),
) -> None:
    """The tenant's newest exam jobs."""
    records = asyncio.run(_recent(tenant, limit))
    table = Table("dataset", "tenant", "strategies", "questions", "status", "started")
    # Ids are what `exam show` takes: never shortened, whatever the terminal's width.
    width = max((len(r.job.job_id) for r in records), default=3)
    table.columns.insert(0, Column("job", no_wrap=True, min_width=width))
    for r in records:
        table.add_row(r.job.job_id, r.dataset_name, r.job.tenant,
                      ",".join(s.value for s in r.job.strategies), str(r.total_questions),
                      r.status.value, r.started_at.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    console.print(table if records else "no exam jobs yet")
