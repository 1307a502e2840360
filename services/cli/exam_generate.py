"""``alignstream exam generate``: a new exam written from a tenant's own rules (OPO), as a job
of the grading service."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from services.cli.params import tenant_option
from services.cli.progress import console
from services.cli.research import copy_output, research_job, staged, submit
from shared import events


def generate(
    tenant: str = tenant_option("Whose rules to write questions about."),
    out: Path = typer.Option(..., help="The exam CSV to write (OPO format + source_rules)."),
    count: int = typer.Option(20, min=1, help="Rules to sample (one question each)."),
    examples: str | None = typer.Option(
        None, help="Few-shot exam file, e.g. examples_law.csv (local files are staged)."
    ),
    shots: int = typer.Option(3, min=0),
    seed: int = typer.Option(0),
    max_tokens: int = typer.Option(512, min=16),
    job_id: str | None = typer.Option(None, help="Reuse to resume a stopped job."),
    timeout: float = typer.Option(3600.0),
) -> None:
    """Sample rules from the memory, have the deployed model write one multiple-choice question
    per rule, keep those the judge passes on OPO's four quality points, and write the exam."""
    spec = events.QuestionGenerateSpec(
        count=count,
        examples=staged(tenant, examples) if examples else None,
        shots=shots,
        seed=seed,
        max_tokens=max_tokens,
    )
    job = research_job(tenant, spec, job_id)
    final = submit(job, detach=False, timeout_s=timeout)
    assert final is not None
    result = final.result
    copy_output(tenant, result, out)
    table = Table(
        "kept",
        "failed the judge",
        "verdict unreadable",
        "not in exam format",
        "error replies",
        title=f"exam written to {out}",
    )
    table.add_row(
        *(str(result.get(k)) for k in ("kept", "rejected", "unjudged", "unparseable", "errors"))
    )
    console.print(table)
