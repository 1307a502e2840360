"""Submitting research jobs and following them: the CLI's side of DRPO, C2-SYN and IterAlign.

The job runs in the grading service; the CLI stages its input files into the tenant's folder
of the grading data root, publishes the job, shows its progress and its result. ``--detach``
(or Ctrl-C) leaves the job running; ``research show|list|cancel`` find it later by its id or
the start of it, and submitting the same ``--job-id`` again resumes a stopped job from its
checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import JsonValue
from rich.table import Column, Table

from services.cli.following import following
from services.cli.groups import command_group
from services.cli.params import tenant_option
from services.cli.progress import console, errors, progress_bar
from services.grading.datasets import stage_dataset
from services.grading.queries import ResearchJobs
from services.grading.settings import GradingSettings
from shared import events
from shared.client import AlignstreamClient
from shared.errors import Hinted
from shared.settings import KafkaSettings, RedisSettings
from shared.topics import RESEARCH_JOBS

T = TypeVar("T")
app = command_group("Research jobs (DRPO, C2-SYN, IterAlign) run by the grading service.")


def staged(tenant: str, given: str) -> str:
    """A local file is copied into the tenant's folder of the grading data root; anything else
    is taken as a name already inside that folder."""
    local = Path(given)
    if local.is_file():
        return stage_dataset(GradingSettings().data_root, tenant, local)
    return given


def research_job(tenant: str, spec: events.ResearchSpec, job_id: str | None) -> events.ResearchJob:
    """A job of ``spec`` for ``tenant``: a new id, or ``job_id`` to resume a stopped job."""
    if job_id is None:
        return events.ResearchJob(tenant=tenant, spec=spec)
    return events.ResearchJob(tenant=tenant, spec=spec, job_id=job_id)


def submit(
    job: events.ResearchJob, *, detach: bool, timeout_s: float
) -> events.ResearchProgress | None:
    """Publish the job; unless detached, follow it to its end (a failed job exits 1)."""
    console.print(f"{job.spec.method} job [bold]{job.job_id}[/] (tenant {job.tenant})")

    async def run() -> events.ResearchProgress | None:
        async with AlignstreamClient(KafkaSettings()) as client:
            if detach:
                await client.send(RESEARCH_JOBS, job)
                await client.flush()
                return None
            with progress_bar() as bar:
                task = bar.add_task(job.spec.method, total=None)

                def on_progress(event: events.ResearchProgress) -> None:
                    bar.update(
                        task,
                        total=event.total or None,
                        completed=event.done,
                        description=f"{job.spec.method}: {event.stage}"[:80],
                    )

                return await client.run_research(job, timeout_s=timeout_s, on_progress=on_progress)

    final = following("research", job.job_id, job.tenant, run())
    if final is None:
        console.print(f"submitted; alignstream research show {job.job_id} --tenant {job.tenant}")
        return None
    if final.status is events.JobStatus.FAILED:
        console.print(f"[red]job {job.job_id} failed: {final.error}[/]")
        raise typer.Exit(1)
    return final


def output_file(tenant: str, result: dict[str, JsonValue]) -> Path | None:
    """The job's output file as this machine sees it (when it shares the data root)."""
    name = result.get("output")
    if not isinstance(name, str):
        return None
    path = GradingSettings().outputs / tenant / name
    return path if path.is_file() else None


def copy_output(tenant: str, result: dict[str, JsonValue], out: Path | None) -> None:
    source = output_file(tenant, result)
    if out is None:
        if source is not None:
            console.print(f"output: {source}")
        return
    if source is None:
        raise Hinted(
            f"the job's output {result.get('output')} is not on this machine",
            "run the CLI where the grading data root is mounted",
        )
    shutil.copyfile(source, out)
    console.print(f"written: {out}")


def _with_jobs(use: Callable[[ResearchJobs], Awaitable[T]]) -> T:
    async def run() -> T:
        async with ResearchJobs.connect(RedisSettings()) as jobs:
            return await use(jobs)

    return asyncio.run(run())


@app.command()
def show(
    job_id: str = typer.Argument(..., help="The job's id (printed at submission), or its start."),
    tenant: str = tenant_option("The tenant the job belongs to."),
) -> None:
    """Where a research job is (stage, progress), or its result once it ended."""
    record = _with_jobs(lambda jobs: jobs.find(tenant, job_id))
    console.print(
        f"{record.job.spec.method} job {record.job.job_id}: {record.status.value}, "
        f"{record.stage} ({record.done}/{record.total})"
    )
    if record.error:
        console.print(f"[red]{record.error}[/]")
    if record.result:
        table = Table("result", "value")
        for key, value in record.result.items():
            shown = value if not isinstance(value, dict | list) else json.dumps(value)[:120]
            table.add_row(key, str(shown))
        console.print(table)


@app.command()
def cancel(
    job_id: str = typer.Argument(..., help="The job's id, or its start."),
    tenant: str = tenant_option("The tenant the job belongs to."),
) -> None:
    """Stop a running research job (its checkpoints and what it wrote so far are kept)."""
    record, was_running = _with_jobs(lambda jobs: jobs.cancel(tenant, job_id))
    if not was_running:
        errors.print(f"job {record.job.job_id} of {tenant} is {record.status.value} already; "
                     "nothing to cancel", markup=False)  # fmt: skip
        raise typer.Exit(1)
    console.print(f"job {record.job.job_id} cancelled at {record.stage or 'its start'} "
                  f"({record.done}/{record.total}); the grading service stops it within "
                  "seconds")  # fmt: skip


@app.command("list")
def list_jobs(
    tenant: str = tenant_option("Whose jobs to list."),
    limit: int = typer.Option(20, min=1, max=1000),
) -> None:
    """The tenant's newest research jobs."""
    records = _with_jobs(lambda jobs: jobs.recent(tenant, limit))
    if not records:
        console.print(f"no research jobs of {tenant} yet")
        return
    table = Table(Column("job", no_wrap=True), "method", "status", "stage", "progress", "started")
    for r in records:
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(r.job.job_id, r.job.spec.method, r.status.value, r.stage,
                      f"{r.done}/{r.total}", started)  # fmt: skip
    console.print(table)
