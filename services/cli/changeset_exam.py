"""``exam run --candidate NAME``: the change set's revision the job grades, the paired result
as the set keeps it (per-category deltas), and ``--replay FROM..TO`` over recorded requests."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from services.cli.changesets import open_sets
from services.cli.progress import console, waiting_for
from services.cli.rules import searching
from services.grading.report import pct
from shared import events
from shared.audit_log import read_audit_log
from shared.changeset_gate import evidence_of
from shared.changeset_replay import ReplayReport, parse_window, replay
from shared.settings import KafkaSettings

CANDIDATE_ARMS = (events.Strategy.OPO, events.Strategy.CANDIDATE)
"""Live OPO first: the baseline of the paired comparison."""


def candidate_revision(tenant: str, name: str) -> int:
    """The open set's revision, which the job grades."""

    async def read() -> int:
        async with open_sets() as sets:
            return (await sets.open_set(tenant, name)).revision

    return asyncio.run(read())


def show_evidence(result: events.ExamResult, name: str, revision: int) -> None:
    evidence = evidence_of(result, revision)
    if evidence is None:
        console.print(f"[yellow]no question was answered both ways: {name} keeps no evidence[/]")
        return
    table = Table("category", "live %", f"{name} %", "delta pp", "answered",
                  title=f"{name} (revision {revision}) against the live memory")  # fmt: skip
    for c in evidence.categories:
        table.add_row(c.category, pct(c.live), pct(c.candidate), f"{100 * c.delta:+.1f}",
                      str(c.answered))  # fmt: skip
    table.add_row("all", pct(evidence.live_accuracy), pct(evidence.candidate_accuracy),
                  f"{100 * evidence.accuracy_delta:+.1f}", str(evidence.pairs),
                  style="bold")  # fmt: skip
    console.print(table)
    console.print(f"McNemar p = {evidence.p_value:.3g} ({evidence.candidate_only} only the set "
                  f"got right, {evidence.live_only} only live); kept on {name} for "
                  f"rules promote --require, while it stays at revision {revision}")  # fmt: skip


def replay_requests(tenant: str, name: str, window: str) -> None:
    """Replay the tenant's recorded requests in the window against the set, and report."""
    since, until = parse_window(window)
    candidate_revision(tenant, name)

    async def run() -> ReplayReport:
        with waiting_for("reading the audit log"):
            read = await read_audit_log(KafkaSettings())
        entries = [link.entry for link in read.of(tenant, since)]
        async with searching() as search:

            async def grounding(
                entry: events.AuditEntry, scope: events.RuleScope
            ) -> tuple[str, ...]:
                found = await search(tenant, entry.question, scope)
                return tuple(f"{r.rule_id}@{r.version}" for r in found.rules)

            return await replay(entries, name, grounding, until=until)

    report = asyncio.run(run())
    console.print(f"{report.replayed} recorded requests replayed: [bold]{report.changed}[/] "
                  f"would be grounded in different rules with {name}; {report.hashed_only} "
                  f"recorded by hash only and {report.not_searching} without rules "
                  "were not replayed")  # fmt: skip
    if report.changed:
        table = Table("rule", "requests gaining it", "requests losing it")
        for rule in sorted(set(report.gained) | set(report.lost))[:30]:
            table.add_row(rule, str(report.gained[rule]), str(report.lost[rule]))
        console.print(table)
    if report.replayed == 0:
        raise typer.Exit(1)
