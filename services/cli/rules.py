"""``alignstream rules publish|search|import-opo``."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from services.cli.progress import console, percentile, progress_bar
from services.ingest.opo import opo_rules, read_jsonl, read_provinces
from services.ingest.rulefiles import RuleEvent, read_rule_file
from services.retrieval.search import RuleSearcher, order_hits
from shared import events
from shared.client import AlignstreamClient
from shared.embedders import EmbedderSettings, make_embedder
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings

app = typer.Typer(help="Publish, search and import rules.", no_args_is_help=True)


async def _publish(rule_events: list[RuleEvent], wait: bool, timeout_s: float) -> None:
    with progress_bar() as bar:
        sent = bar.add_task("published", total=len(rule_events))
        confirmed = bar.add_task("servable", total=len(rule_events), visible=wait)
        async with AlignstreamClient(KafkaSettings()) as client:
            confirmations = await client.publish_rules(
                rule_events,
                wait=wait,
                timeout_s=timeout_s,
                on_sent=lambda n: bar.advance(sent, n),
                on_confirmed=lambda _: bar.advance(confirmed),
            )
    if wait:
        latencies = [c.latency_ms for c in confirmations]
        applied = sum(c.outcome is events.IndexOutcome.APPLIED for c in confirmations)
        table = Table("events", "applied", "unchanged (stale/replay)", "p50 ms", "p99 ms")
        table.add_row(
            str(len(confirmations)),
            str(applied),
            str(len(confirmations) - applied),
            f"{percentile(latencies, 50):.1f}",
            f"{percentile(latencies, 99):.1f}",
        )
        console.print(table)


@app.command()
def publish(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL or CSV file."),
    tenant: str | None = typer.Option(None, help="Tenant for rows that name none."),
    wait: bool = typer.Option(False, help="Wait until every event is servable."),
    timeout: float = typer.Option(120.0, help="Seconds to wait with --wait."),
    skip_invalid: bool = typer.Option(
        False, help="Publish the valid rows even if some rows are invalid."
    ),
) -> None:
    """Publish rule events from a file; nothing is published if any row is invalid."""
    parsed = read_rule_file(file, tenant=tenant)
    for error in parsed.errors[:20]:
        console.print(f"[red]{file}:{error}[/]")
    if len(parsed.errors) > 20:
        console.print(f"[red]... and {len(parsed.errors) - 20} more errors[/]")
    if parsed.errors and not skip_invalid:
        console.print("[red]nothing published[/] (fix the rows, or pass --skip-invalid)")
        raise typer.Exit(2)
    if not parsed.events:
        console.print("no rules in the file")
        raise typer.Exit(1)
    asyncio.run(_publish(parsed.events, wait, timeout))


async def _search(query: str, flt: RuleFilter, k: int) -> None:
    embedder = make_embedder(EmbedderSettings())
    await embedder.start()
    client = make_redis(RedisSettings())
    try:
        schema = RuleSchema(RedisSettings().key_prefix, embedder.dim, embedder.name)
        vector = (await embedder.embed([query]))[0].tobytes()
        hits = order_hits(
            await RuleSearcher(client, schema, ef_runtime=100).search(vector, flt, k=k)
        )
    finally:
        await client.aclose()
        await embedder.close()
    table = Table("score", "rule", "v", "jurisdiction", "text")
    for hit in hits:
        text = hit.text if len(hit.text) <= 120 else hit.text[:117] + "..."
        table.add_row(
            f"{hit.similarity:.3f}", hit.rule_id, str(hit.version), hit.jurisdiction, text
        )
    console.print(table)


@app.command()
def search(
    query: str,
    tenant: str = typer.Option(..., help="Whose rules to search."),
    domain: list[events.RuleDomain] = typer.Option([], help="Repeatable."),
    jurisdiction: list[str] = typer.Option([], help="Repeatable; global rules always match."),
    locale: list[str] = typer.Option([], help="Repeatable."),
    as_of: str | None = typer.Option(None, help="YYYY-MM-DD: only rules in force that day."),
    k: int = typer.Option(5, "-k", "--top-k", min=1, max=100),
) -> None:
    """Search the rule memory directly (what retrieval would find)."""
    flt = RuleFilter(
        tenant=tenant,
        domains=tuple(domain),
        jurisdictions=tuple(jurisdiction),
        locales=tuple(locale),
        as_of=date.fromisoformat(as_of) if as_of else None,
    )
    asyncio.run(_search(query, flt, k))


@app.command("import-opo")
def import_opo(
    file: Path = typer.Argument(..., exists=True, help="law_principles.jsonl or similar."),
    tenant: str = typer.Option(..., help="Tenant that will own the rules."),
    domain: events.RuleDomain = typer.Option(events.RuleDomain.LAW),
    provinces: Path | None = typer.Option(
        None, help="province2laws.json: file city-level rules under their province."
    ),
    version: int = typer.Option(1, min=1),
    out: Path | None = typer.Option(None, help="Write rule events as JSONL instead."),
    wait: bool = typer.Option(False, help="With publishing: wait until servable."),
) -> None:
    """Convert an OPO principle corpus (one rule per article) and publish it (or write JSONL)."""
    rules = list(
        opo_rules(
            read_jsonl(file),
            tenant=tenant,
            domain=domain,
            version=version,
            provinces=read_provinces(provinces),
        )
    )
    rule_events: list[RuleEvent] = [events.RuleUpsert(rule=rule) for rule in rules]
    console.print(f"{len(rules)} rules from {file}")
    if out is not None:
        with out.open("w", encoding="utf-8") as handle:
            for event in rule_events:
                handle.write(json.dumps(event.model_dump(mode="json"), ensure_ascii=False) + "\n")
        console.print(f"wrote {out}")
        return
    asyncio.run(_publish(rule_events, wait, timeout_s=600.0))
