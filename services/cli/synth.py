"""``alignstream synth course-correction``: C2-SYN preference pairs (a research job)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.params import tenant_option
from services.cli.progress import console
from services.cli.research import copy_output, research_job, staged, submit
from shared import events

app = command_group("Synthetic training data made through the pipeline.")


@app.command("course-correction")
def course_correction(
    input: str = typer.Option(
        ..., "--input", help="PKU-SafeRLHF JSONL (prompt, response_0/1, is_response_0/1_safe)."
    ),
    tenant: str = tenant_option("The tenant the requests are asked as."),
    corrections: int = typer.Option(4, min=1, max=16, help="Cuts of the harmful response."),
    min_words: int = typer.Option(80, min=1, help="Use harmful responses longer than this."),
    limit: int | None = typer.Option(None, min=1, help="Use the first N usable requests."),
    max_tokens: int = typer.Option(128, min=1),
    verify: bool = typer.Option(True, help="Keep only judge-verified corrections."),
    chunk: int = typer.Option(16, min=1, max=256, help="Requests per committed step."),
    seed: int = typer.Option(0),
    job_id: str | None = typer.Option(None, help="Reuse to resume a stopped job."),
    out: Path | None = typer.Option(None, help="Copy the pairs (JSONL) here."),
    detach: bool = typer.Option(False, help="Submit and return; the job runs on."),
    timeout: float = typer.Option(24 * 3600.0, help="Seconds to follow the job."),
) -> None:
    """C2-SYN: per harmful request, the model's own answer, corrections after 1..N cuts of the
    harmful response (earlier ranks higher) and the harmful response; every ranked pair is a
    chosen/rejected row (TRL's DPO format), de-duplicated."""
    spec = events.CourseCorrectionSynthSpec(
        dataset=staged(tenant, input),
        corrections=corrections,
        min_words=min_words,
        limit=limit,
        max_tokens=max_tokens,
        verify=verify,
        chunk=chunk,
        seed=seed,
    )
    job = research_job(tenant, spec, job_id)
    final = submit(job, detach=detach, timeout_s=timeout)
    if final is None:
        return
    result = final.result
    table = Table(
        "requests",
        "pairs",
        "duplicates dropped",
        "corrections kept",
        "rejected corrections",
        "pairs/s",
        title="C2-SYN",
    )
    table.add_row(
        *(
            str(result.get(k))
            for k in (
                "requests",
                "pairs",
                "duplicates_dropped",
                "corrections_kept",
                "rejected_corrections",
                "pairs_per_s",
            )
        )
    )
    console.print(table)
    console.print(f"pairs per request: {result.get('pairs_per_request')}")
    copy_output(tenant, result, out)
