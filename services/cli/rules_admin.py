"""``alignstream rules list|show|history|rollback|activate|deactivate``: the rules a tenant has,
every version of one, and the changes an admin makes to existing rules. A change is a new
version of the rule, published and confirmed like any edit (``shared/memory/lifecycle.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import typer
from rich.table import Table

from services.cli.params import iso_date, rule_id, tenant_option
from services.cli.progress import console, errors
from services.cli.rules import publish_events
from shared import events
from shared.memory.history import HistoryEntry, RuleHistory
from shared.memory.keys import RuleKeys
from shared.memory.lifecycle import RuleLifecycle
from shared.memory.query import RuleSelection
from shared.memory.reader import RuleReader, StoredRule
from shared.redis import make_redis
from shared.settings import RedisSettings

TENANT = tenant_option("Whose rules.")


def publisher() -> str:
    """Who this CLI publishes as: the user and host (a claim; signatures say who holds a key)."""
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"[:200]


@contextlib.asynccontextmanager
async def rule_memory() -> AsyncIterator[RuleLifecycle]:
    settings = RedisSettings()
    client = make_redis(settings)
    try:
        keys = RuleKeys(settings.key_prefix)
        yield RuleLifecycle(RuleReader(client, keys), RuleHistory(client, settings.key_prefix))
    finally:
        await client.aclose()


def snippet(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def list_rules(
    tenant: str = TENANT,
    scope: list[str] = typer.Option(
        [],
        "--scope",
        help="Repeatable: rules that apply there (its ancestors and global included).",
    ),
    domain: list[events.RuleDomain] = typer.Option([], help="Repeatable."),
    status: list[events.RuleStatus] = typer.Option([], help="Repeatable. Default: any."),
    tag: list[str] = typer.Option([], help="Repeatable: rules with any of these tags."),
    in_force: str | None = typer.Option(None, help="Only rules in force that day (YYYY-MM-DD)."),
    limit: int = typer.Option(50, min=1, max=500, help="Rules per page."),
    offset: int = typer.Option(0, min=0, help="Rules to skip (the next page's offset)."),
) -> None:
    """The tenant's rules that match every filter given, in rule id order, a page at a time."""
    selection = RuleSelection(tuple(scope), tuple(domain), tuple(status), tuple(tag),
                              in_force=iso_date(in_force, "--in-force"))  # fmt: skip
    flt = selection.filter(tenant)

    async def select() -> tuple[list[StoredRule], int]:
        async with rule_memory() as memory:
            return await memory.reader.select(flt, offset=offset, limit=limit)

    rules, total = asyncio.run(select())
    table = Table("rule", "version", "status", "domain", "jurisdiction", "title / text")
    for rule in rules:
        table.add_row(rule.rule_id, str(rule.version), rule.status, rule.domain,
                      rule.jurisdiction, snippet(rule.title or rule.text))  # fmt: skip
    console.print(table)
    shown = f"{offset + 1}–{offset + len(rules)}" if rules else "none"
    more = offset + len(rules) < total
    console.print(f"rules {shown} of {total}" + (f"; next page: --offset {offset + len(rules)}"
                                                  if more else ""))  # fmt: skip


def show(rule: str = typer.Argument(..., help="Rule id."), tenant: str = TENANT) -> None:
    """One rule as the memory serves it now, with its live version."""
    rule = rule_id(rule)

    async def read() -> tuple[events.Rule | None, int, int]:
        async with rule_memory() as memory:
            current = await memory.current(tenant, rule)
            applied = await memory.reader.version(tenant, rule)
            return current, applied, await memory.history.newest_version(tenant, rule)

    current, applied, newest = asyncio.run(read())
    if current is None:
        state = f"deleted at version {-applied}" if applied < 0 else "not in the memory"
        errors.print(f"rule {rule!r}: {state}", style="red", markup=False)
        raise typer.Exit(1)
    table = Table("field", "value", show_header=False)
    for name, value in current.model_dump(mode="json", exclude={"tenant"}).items():
        if value not in (None, [], ""):
            table.add_row(name, str(value))
    console.print(table)
    if newest > applied:
        console.print(f"[yellow]version {newest} is published but not applied yet[/]")


def history(
    rule: str = typer.Argument(..., help="Rule id."),
    tenant: str = TENANT,
    limit: int = typer.Option(20, min=1, max=1000, help="Newest versions shown."),
) -> None:
    """Every version of a rule, newest first: when it was published, by whom, how it was signed,
    and which one is live."""
    rule = rule_id(rule)

    async def read() -> tuple[list[HistoryEntry], int]:
        async with rule_memory() as memory:
            entries = await memory.history.versions(tenant, rule, limit=limit)
            return entries, await memory.reader.version(tenant, rule)

    entries, applied = asyncio.run(read())
    if not entries:
        errors.print(f"rule {rule!r} has no recorded versions", style="red", markup=False)
        raise typer.Exit(1)
    table = Table("version", "op", "live", "event time", "publisher", "signature", "status",
                  "title / text")  # fmt: skip
    for entry in entries:
        live = "✓" if entry.version == applied else ""
        text = "" if entry.rule is None else snippet(entry.rule.title or entry.rule.text, 40)
        status = "" if entry.rule is None else entry.rule.status.value
        table.add_row(str(entry.version), entry.op, live,
                      entry.event_time.isoformat(timespec="seconds"), entry.publisher or "-",
                      entry.signature, status, text)  # fmt: skip
    console.print(table)


def _publish(
    build: Callable[[RuleLifecycle], Awaitable[list[events.RuleUpsert]]], wait: bool, timeout: float
) -> list[events.RuleUpsert]:
    async def run() -> list[events.RuleUpsert]:
        async with rule_memory() as memory:
            changes = await build(memory)
        if changes:
            await publish_events(list(changes), wait, timeout)
        return changes

    return asyncio.run(run())


WAIT = typer.Option(True, help="Wait until the change is servable.")
TIMEOUT = typer.Option(60.0, help="Seconds to wait.")


def rollback(
    rule: str = typer.Argument(..., help="Rule id."),
    to: int = typer.Option(..., "--to", min=1, help="The version whose content comes back."),
    tenant: str = TENANT,
    wait: bool = WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Publish an old version's content as the rule's next version."""
    rule = rule_id(rule)

    async def build(memory: RuleLifecycle) -> list[events.RuleUpsert]:
        return [await memory.rollback(tenant, rule, to, publisher=publisher())]

    (change,) = _publish(build, wait, timeout)
    console.print(f"{rule}: version {change.rule.version} has the content of version {to}")


def _set_status(rules: list[str], tenant: str, status: events.RuleStatus, wait: bool,
                timeout: float) -> None:  # fmt: skip
    ids = [rule_id(r) for r in rules]

    async def build(memory: RuleLifecycle) -> list[events.RuleUpsert]:
        found = [await memory.with_status(tenant, r, status, publisher=publisher()) for r in ids]
        return [change for change in found if change is not None]

    changes = _publish(build, wait, timeout)
    changed = {c.rule.rule_id for c in changes}
    for r in ids:
        console.print(f"{r}: {status.value}" + ("" if r in changed else " already"))


def activate(
    rules: list[str] = typer.Argument(..., help="Rule ids."),
    tenant: str = TENANT,
    wait: bool = WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Serve these rules again (or for the first time: pending rules from discovery)."""
    _set_status(rules, tenant, events.RuleStatus.ACTIVE, wait, timeout)


def deactivate(
    rules: list[str] = typer.Argument(..., help="Rule ids."),
    tenant: str = TENANT,
    wait: bool = WAIT,
    timeout: float = TIMEOUT,
) -> None:
    """Stop serving these rules; they stay in the memory with their history."""
    _set_status(rules, tenant, events.RuleStatus.INACTIVE, wait, timeout)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``rules`` group."""
    app.command("list")(list_rules)
    for command in (show, history, rollback, activate, deactivate):
        app.command()(command)
