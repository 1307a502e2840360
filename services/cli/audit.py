"""``alignstream audit export|verify``: the audit trail of answered requests, and its proof."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.params import iso_date, tenant_option
from services.cli.progress import console, errors
from shared import events
from shared.audit_chain import verify
from shared.audit_log import read_audit_log
from shared.errors import Hinted
from shared.settings import KafkaSettings

app = command_group("The audit trail of answered requests: export it, verify its hash chains.")


def _since(value: str | None) -> datetime | None:
    day = iso_date(value, "--since")
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


def _write_parquet(links: list[events.AuditLink], out: Path) -> None:
    try:
        import pyarrow as pa  # type: ignore[import-not-found]
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError:
        raise Hinted(
            "parquet needs pyarrow", "pip install pyarrow, or use --format jsonl"
        ) from None
    rows = [{"tenant": link.tenant, "seq": link.seq, "prev_hash": link.prev_hash, "hash": link.hash,
             "request_id": link.entry.request_id, "answered_at": link.entry.answered_at,
             "entry": link.entry.model_dump_json()} for link in links]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), out)


@app.command()
def export(
    tenant: str = tenant_option("Whose audit trail."),
    since: str | None = typer.Option(
        None, help="Only entries answered from this day (YYYY-MM-DD)."
    ),
    format: Literal["jsonl", "parquet"] = typer.Option("jsonl", help="jsonl or parquet."),
    out: Path = typer.Option(..., help="File to write."),
) -> None:
    """Write the tenant's chained audit records, in sequence order (with --since: a fragment of
    the chain, verified with ``audit verify --file F --partial``)."""
    read = asyncio.run(read_audit_log(KafkaSettings()))
    links = sorted(read.of(tenant, _since(since)), key=lambda link: link.seq)
    if format == "parquet":
        _write_parquet(links, out)
    else:
        out.write_text("".join(link.model_dump_json() + "\n" for link in links), encoding="utf-8")
    console.print(f"{len(links)} records of {tenant} written to {out}")
    if read.rejected:
        errors.print(
            f"{read.rejected} records on the log failed their signature check", style="red"
        )


def _links_of(file: Path) -> list[events.AuditLink]:
    links = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                links.append(events.AuditLink.model_validate_json(line))
            except ValueError:
                hint = "pass a file written by alignstream audit export"
                raise Hinted(f"{file}:{number}: not an audit record", hint) from None
    return links


@app.command("verify")
def verify_chain(
    tenant: str | None = tenant_option(
        "Only this tenant's chain (default: every one).", required=False
    ),
    file: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="A JSONL export to verify instead of the log."
    ),
    partial: bool = typer.Option(False, help="The file starts mid-chain (an export with --since)."),
) -> None:
    """Check each tenant's hash chain: a removed, altered or reordered record is reported, and
    the command exits 1."""
    if file is not None:
        links, rejected = _links_of(file), 0
    else:
        read = asyncio.run(read_audit_log(KafkaSettings()))
        links, rejected = read.links, read.rejected
    report = verify((link for link in links if tenant is None or link.tenant == tenant),
                    partial=partial)  # fmt: skip
    table = Table("tenant", "records")
    for name, last in report.tenants.items():
        table.add_row(name, str(last))
    console.print(table)
    if report.repeats:
        console.print(
            f"{report.repeats} records repeated exactly (an append retried): counted once"
        )
    for problem in report.problems:
        errors.print(problem, style="red", markup=False)
    if rejected:
        errors.print(f"{rejected} records failed their signature check", style="red")
    if not report.ok or rejected:
        raise typer.Exit(1)
    console.print(json.dumps({"verified": report.links, "tenants": len(report.tenants)}))
