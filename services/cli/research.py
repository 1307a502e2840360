"""Submitting research jobs and following them: the CLI's side of DRPO, C2-SYN and IterAlign.

The job runs in the grading service; the CLI stages its input files into the tenant's folder
of the grading data root, publishes the job, shows its progress and its result. ``--detach``
leaves at once (the job runs on); ``alignstream research show`` reads it back later, and
submitting the same ``--job-id`` again resumes a stopped job from its checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import typer
from pydantic import JsonValue
from rich.table import Table

from services.cli.groups import command_group
from services.cli.progress import console, progress_bar
from services.grading.datasets import stage_dataset
from services.grading.records import scoped_id
from services.grading.research.store import ResearchStore
from services.grading.settings import GradingSettings
from shared import events
from shared.client import AlignstreamClient
from shared.errors import Hinted
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings
from shared.topics import RESEARCH_JOBS

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

    try:
        final = asyncio.run(run())
    except TimeoutError as exc:
        raise Hinted(
            str(exc),
            "is the grading service running (alignstream serve grading)? "
            f"alignstream research show {job.job_id} --tenant {job.tenant} shows where it is",
        ) from exc
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


async def _record(tenant: str, job_id: str) -> Any:
    settings = RedisSettings()
    client = make_redis(settings)
    try:
        return await ResearchStore(client, settings.key_prefix).get(scoped_id(tenant, job_id))
    finally:
        await client.aclose()


@app.command()
def show(
    job_id: str = typer.Argument(..., help="The job's id (printed when it was submitted)."),
    tenant: str = typer.Option(...),
) -> None:
    """Where a research job is (stage, progress), or its result once it ended."""
    record = asyncio.run(_record(tenant, job_id))
    if record is None:
        raise Hinted(
            f"no research job {job_id} of tenant {tenant}",
            "jobs are kept per tenant: check --tenant",
        )
    console.print(
        f"{record.job.spec.method} job {job_id}: {record.status.value}, "
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
