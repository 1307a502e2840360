"""``alignstream rules publish|search|import-opo`` (and ``rules_admin``: list, show, history,
rollback, activate, deactivate; ``changesets``: stage, changes, diff, promote, discard)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.params import iso_date, tenant_option
from services.cli.progress import console, errors, percentile, progress_bar
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders import Embedder, make_embedder
from shared.events import RulesTopicEvent
from shared.memory.jurisdictions import JurisdictionMap
from shared.memory.query import RuleFilter
from shared.memory.reader import RuleReader
from shared.memory.retriever import Retrieved, RuleRetriever
from shared.memory.schema import RuleSchema
from shared.memory.trees import JurisdictionStore
from shared.opo import opo_rules, opo_tree, organizations_of, read_jsonl, read_province2laws
from shared.redis import make_redis
from shared.rulefiles import read_rule_file
from shared.settings import KafkaSettings

app = command_group(
    "Publish, list, search, roll back and (de)activate rules; show their history; stage, "
    "compare, promote or discard change sets."
)


async def publish_events(rule_events: list[RulesTopicEvent], wait: bool, timeout_s: float) -> None:
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
    tenant: str | None = tenant_option("Tenant for rows that name none.", required=False),
    wait: bool = typer.Option(False, help="Wait until every event is servable."),
    timeout: float = typer.Option(120.0, help="Seconds to wait with --wait."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Publish the valid rows even if some rows are invalid."
    ),
    last_wins: bool = typer.Option(
        False, "--last-wins", help="The same rule twice in the file: keep the last line."
    ),
) -> None:
    """Publish rule events from a JSONL or CSV file (fields: README, "Rule files"); nothing is
    published if any line is invalid."""
    rule_events = read_or_exit(file, tenant, skip_invalid=skip_invalid, last_wins=last_wins)
    asyncio.run(publish_events(list(rule_events), wait, timeout))


def read_or_exit(
    file: Path, tenant: str | None, *, skip_invalid: bool, last_wins: bool
) -> list[events.RuleEvent]:
    """A rule file's events; each bad line printed with its line number, and the command ends
    (nothing published) unless ``skip_invalid``."""
    parsed = read_rule_file(file, tenant=tenant, last_wins=last_wins)
    for error in parsed.errors[:20]:
        errors.print(f"{file}:{error.line}: {error.message}", style="red", markup=False)
    if len(parsed.errors) > 20:
        errors.print(f"... and {len(parsed.errors) - 20} more errors", style="red")
    if parsed.errors and not skip_invalid:
        errors.print("nothing published (fix the lines, or pass --skip-invalid)", style="red")
        raise typer.Exit(2)
    if not parsed.events:
        errors.print(f"{file}: no rules in the file")
        raise typer.Exit(1)
    return parsed.events


@dataclass(frozen=True, slots=True)
class MemorySearch:
    """``search(tenant, query, scope)``: what retrieval would ground a request in."""

    embedder: Embedder
    retriever: RuleRetriever
    reader: RuleReader

    async def __call__(self, tenant: str, query: str, scope: events.RuleScope) -> Retrieved:
        vector = (await self.embedder.embed([query]))[0].tobytes()
        today = datetime.now(UTC).date()
        return await self.retriever.retrieve(tenant, scope, query, vector, today=today)

    async def has_rules(self, tenant: str) -> bool:
        return (await self.reader.select(RuleFilter(tenant=tenant), limit=1))[1] > 0


@contextlib.asynccontextmanager
async def searching() -> AsyncIterator[MemorySearch]:
    """Exactly what retrieval does for a request: its settings, scope inference, fusion and
    budget (the embedder is loaded once for every search of the block)."""
    settings = RetrievalSettings()
    client = make_redis(settings.redis)
    embedder = make_embedder(settings.embedder)
    try:
        await client.ping()  # a wrong REDIS_URL fails now, not after the model has loaded
        await embedder.start()
        schema = RuleSchema(settings.redis.key_prefix, embedder.dim, embedder.name)
        searcher = settings.searcher(client, schema)
        trees = JurisdictionStore(client, settings.redis.key_prefix)
        retriever = RuleRetriever(searcher, trees, settings.retrieval_options())
        yield MemorySearch(embedder, retriever, RuleReader(client, schema))
    finally:
        await client.aclose()
        await embedder.close()


async def _search(tenant: str, query: str, scope: events.RuleScope) -> tuple[Retrieved, bool]:
    """What retrieval finds, and whether the tenant has any rule at all (asked only when
    nothing was found)."""
    async with searching() as search:
        found = await search(tenant, query, scope)
        return found, bool(found.candidates) or await search.has_rules(tenant)


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def _show(found: Retrieved, explain: bool) -> None:
    scope = found.scope
    where = "every jurisdiction" if scope.every_jurisdiction else ", ".join(scope.searched)
    console.print(f"scope ({scope.source}): {where}")
    if scope.unresolved:
        console.print(f"[yellow]not in the tenant's tree:[/] {', '.join(scope.unresolved)}")
    if explain:
        packed = {r.rule_id for r in found.rules}
        table = Table("fused", "vector #", "lexical #", "packed", "cosine", "rule", "v",
                      "jurisdiction", "text")  # fmt: skip
        for hit in found.candidates:
            ranks = (_rank(hit.vector_rank), _rank(hit.lexical_rank))
            table.add_row(f"{hit.fused:.4f}", *ranks, "yes" if hit.rule_id in packed else "",
                          f"{hit.similarity:.3f}", hit.rule_id, str(hit.version),
                          hit.jurisdiction, _short(hit.text))  # fmt: skip
    else:
        table = Table("cosine", "rule", "v", "jurisdiction", "tokens", "text")
        for rule in found.rules:
            table.add_row(f"{rule.score:.3f}", rule.rule_id, str(rule.version),
                          rule.jurisdiction, str(rule.tokens), _short(rule.text))  # fmt: skip
    console.print(table)
    tokens = sum(r.tokens for r in found.rules)
    console.print(f"{len(found.rules)} rules packed, {tokens} tokens")


@app.command()
def search(
    query: str,
    tenant: str = tenant_option("Whose rules to search."),
    domain: list[events.RuleDomain] = typer.Option([], help="Repeatable."),
    jurisdiction: list[str] = typer.Option(
        [],
        help="Repeatable; a node or name of the tenant's tree. Default: what the question names.",
    ),
    any_jurisdiction: bool = typer.Option(False, help="No jurisdiction filter."),
    locale: list[str] = typer.Option([], help="Repeatable."),
    as_of: str | None = typer.Option(None, help="YYYY-MM-DD: only rules in force that day."),
    k: int = typer.Option(5, "-k", "--top-k", min=1, max=100),
    budget: int = typer.Option(1000, help="Token budget of the packed rules.", min=1, max=32_000),
    explain: bool = typer.Option(False, help="Every candidate with its vector and lexical rank."),
) -> None:
    """What retrieval would ground a request in: same scope, fusion and budget."""
    if not query.strip():
        raise typer.BadParameter("the question is empty: give the text to search with",
                                 param_hint="QUERY")  # fmt: skip
    scope = events.RuleScope(
        domains=tuple(domain),
        jurisdictions=tuple(jurisdiction),
        any_jurisdiction=any_jurisdiction,
        locales=tuple(locale),
        as_of=iso_date(as_of, "--as-of"),
        top_k=k,
        token_budget=budget,
    )
    found, has_rules = asyncio.run(_search(tenant, query, scope))
    if not has_rules:
        errors.print(f"tenant {tenant} has no rules in the memory; publish some first: "
                     f"alignstream rules publish FILE --tenant {tenant}", markup=False)  # fmt: skip
        raise typer.Exit(1)
    _show(found, explain)


class Unplaced(enum.StrEnum):
    TREE = "tree"
    DEFAULT = "default"


@app.command("import-opo")
def import_opo(
    file: Path = typer.Argument(..., exists=True, help="law_principles.jsonl or similar."),
    tenant: str = tenant_option("Tenant that will own the rules."),
    domain: events.RuleDomain = typer.Option(events.RuleDomain.LAW),
    provinces: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="province2laws.json: also publish the tenant's jurisdiction tree (country, "
        "provinces, cities) and file each rule under its node.",
    ),
    country: str = typer.Option("CN", help="Root node of the tree (national law)."),
    unplaced: Unplaced = typer.Option(
        Unplaced.TREE,
        help="A question that names no place: search the whole tree, or the national scope "
        "only (default).",
    ),
    version: int = typer.Option(1, min=1),
    out: Path | None = typer.Option(None, help="Write rule events as JSONL instead."),
    wait: bool = typer.Option(False, help="With publishing: wait until servable."),
) -> None:
    """Convert an OPO principle corpus (one rule per article) and publish it (or write JSONL).
    A morality corpus with ``--provinces``: its organizations become nodes of the tree too."""
    rows = read_jsonl(file)
    tree = None
    if provinces is not None:
        organizations = organizations_of(rows) if domain is events.RuleDomain.MORALITY else ()
        tree = opo_tree(read_province2laws(provinces), tenant=tenant, version=version,
                        country=country, unplaced=unplaced.value,
                        organizations=organizations)  # fmt: skip
    rules = list(
        opo_rules(
            rows,
            tenant=tenant,
            domain=domain,
            version=version,
            tree=JurisdictionMap.from_tree(tree) if tree is not None else None,
            country=country,
        )
    )
    rule_events: list[RulesTopicEvent] = [events.RuleUpsert(rule=rule) for rule in rules]
    if tree is not None:
        rule_events.insert(0, tree)
        console.print(f"jurisdiction tree: {len(tree.nodes)} nodes, default scope {country}, "
                      f"questions without a place search: {unplaced.value}")  # fmt: skip
    console.print(f"{len(rules)} rules from {file}")
    if out is not None:
        with out.open("w", encoding="utf-8") as handle:
            for event in rule_events:
                handle.write(json.dumps(event.model_dump(mode="json"), ensure_ascii=False) + "\n")
        console.print(f"wrote {out}")
        return
    asyncio.run(publish_events(rule_events, wait, timeout_s=600.0))
