"""``alignstream exam generate``: a new exam written from a tenant's own rules (OPO)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from services.cli.progress import console, progress_bar
from services.grading.datasets import DatasetError, load_exam
from services.grading.judge.client import JudgeError, judge_from_env
from services.grading.questiongen.generate import GenerationReport, generate_questions, write_exam
from services.grading.questiongen.sources import sample_rules
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings, RedisSettings


async def _generate(tenant: str, count: int, examples: Path | None, shots: int, seed: int,
                    max_tokens: int, wait_s: float) -> GenerationReport:  # fmt: skip
    redis_settings = RedisSettings()
    async with judge_from_env(redis_settings) as (judge, redis):
        rules = await sample_rules(redis, redis_settings.key_prefix, tenant, count, seed)
        if not rules:
            raise typer.BadParameter(f"tenant {tenant!r} has no active rules in the memory")
        shot_pool = load_exam(examples).questions if examples else ()
        with progress_bar() as bar:
            task = bar.add_task("written and judged", total=2 * len(rules))
            async with AlignstreamClient(KafkaSettings()) as client:
                return await generate_questions(
                    client, judge, tenant, rules, shot_pool, shots=shots, seed=seed,
                    max_tokens=max_tokens, timeout_s=wait_s, on_step=lambda: bar.advance(task),
                )  # fmt: skip


def generate(
    tenant: str = typer.Option(..., help="Whose rules to write questions about."),
    out: Path = typer.Option(..., help="The exam CSV to write (OPO format + source_rules)."),
    count: int = typer.Option(20, min=1, help="Rules to sample (one question each)."),
    examples: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Few-shot exam file, e.g. examples_law.csv."
    ),
    shots: int = typer.Option(3, min=0),
    seed: int = typer.Option(0),
    max_tokens: int = typer.Option(512, min=16),
    timeout: float = typer.Option(3600.0),
) -> None:
    """Sample rules from the memory, have the deployed model write one multiple-choice question
    per rule, keep those the judge passes on OPO's four quality points, and write the exam."""
    try:
        report = asyncio.run(_generate(tenant, count, examples, shots, seed, max_tokens, timeout))
    except (JudgeError, DatasetError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    write_exam(out, report.kept)
    table = Table("kept", "failed the judge", "verdict unreadable", "not in exam format",
                  "error replies", title=f"exam written to {out}")  # fmt: skip
    table.add_row(str(len(report.kept)), str(report.rejected), str(report.unjudged),
                  str(report.unparseable), str(report.errors))  # fmt: skip
    console.print(table)
