"""``alignstream rules stage|changes|diff|promote|discard``: change sets. Candidate versions are
staged under a name (live traffic never sees them), compared with the live rules, graded by
``exam run --candidate NAME`` against the live memory, then promoted for the tenant at once
(one event; refused whole when a gate fails or a live version overtook a staged one) or
discarded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import typer
from rich.table import Table

from services.cli.params import set_name, tenant_option
from services.cli.progress import console, errors
from services.cli.rules import read_or_exit
from services.cli.rules_admin import TENANT, TIMEOUT, publisher, rule_memory, snippet
from shared import events
from shared.changeset_gate import ExamEvidence, Gate
from shared.client import AlignstreamClient
from shared.errors import Hinted
from shared.events import IndexOutcome
from shared.memory.changesets import ChangeSetInfo, ChangeSetStore
from shared.memory.lifecycle import RuleLifecycle
from shared.settings import KafkaSettings

NAME = typer.Option(..., "--name", help="The change set (lower case: letters, digits, . _ -).")


class Sets:
    """What the commands read: the tenant's change sets and its live rules."""

    def __init__(self, store: ChangeSetStore, rules: RuleLifecycle) -> None:
        self.store = store
        self.rules = rules

    async def open_set(self, tenant: str, name: str) -> ChangeSetInfo:
        info = await self.store.info(tenant, name)
        if info is None:
            hint = f"stage one: alignstream rules stage FILE --name {name} --tenant {tenant}"
            raise Hinted(f"{tenant} has no change set {name!r}", hint)
        if info.state != "open":
            raise Hinted(f"change set {name!r} is {info.state}",
                         "stage the changes again under a new name")  # fmt: skip
        return info


@contextlib.asynccontextmanager
async def open_sets() -> AsyncIterator[Sets]:
    async with rule_memory() as rules:
        yield Sets(ChangeSetStore(rules.reader.client, rules.reader.schema), rules)


async def _publish(
    rule_events: Sequence[events.RulesTopicEvent], timeout_s: float
) -> list[events.RuleIndexed]:
    async with AlignstreamClient(KafkaSettings()) as client:
        return await client.publish_rules(rule_events, wait=True, timeout_s=timeout_s)


def stage(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL or CSV rule file."),
    name: str = NAME,
    tenant: str | None = tenant_option("Tenant for rows that name none.", required=False),
    timeout: float = TIMEOUT,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Stage the valid rows."),
    last_wins: bool = typer.Option(False, "--last-wins", help="A rule twice: keep the last."),
) -> None:
    """Stage a rule file's versions in a change set: live traffic does not see them until the
    set is promoted. Staging again adds to the set (a newer version of a rule replaces it)."""
    name = set_name(name, "--name")
    changes = read_or_exit(file, tenant, skip_invalid=skip_invalid, last_wins=last_wins)
    tenants = {c.target.tenant for c in changes}
    if len(tenants) > 1:
        raise Hinted(f"{file} names {len(tenants)} tenants; a change set is one tenant's",
                     "stage each tenant's rules in a file of their own")  # fmt: skip
    staged = [events.ChangeSetStage(name=name, change=c) for c in changes]
    confirmed = asyncio.run(_publish(staged, timeout))
    counts = {o: sum(c.outcome is o for c in confirmed) for o in IndexOutcome}
    console.print(f"change set {name}: {counts[IndexOutcome.APPLIED]} staged, "
                  f"{counts[IndexOutcome.STALE]} unchanged (that version or a newer one is "
                  f"staged or live), {counts[IndexOutcome.REFUSED]} refused")  # fmt: skip
    if counts[IndexOutcome.REFUSED]:
        errors.print("refused: the set is promoted or discarded, or full", style="red")
        raise typer.Exit(1)


def changes(tenant: str = TENANT) -> None:
    """The tenant's change sets: state, revision, rules, and the exam evidence kept."""

    async def read() -> list[ChangeSetInfo]:
        async with open_sets() as sets:
            infos = [await sets.store.info(tenant, n) for n in await sets.store.names(tenant)]
            return [i for i in infos if i is not None]

    infos = asyncio.run(read())
    table = Table("change set", "state", "revision", "rules", "created", "exam (revision)")
    for info in infos:
        evidence = ExamEvidence.model_validate_json(info.evidence) if info.evidence else None
        exam = "-" if evidence is None else (
            f"{100 * evidence.accuracy_delta:+.1f} pp, p={evidence.p_value:.3g} "
            f"({evidence.revision})")  # fmt: skip
        table.add_row(info.name, info.state, str(info.revision), str(info.members),
                      info.created_at[:19], exam)  # fmt: skip
    console.print(table if infos else f"{tenant} has no change sets")


def diff(name: str = typer.Argument(..., help="The change set."), tenant: str = TENANT) -> None:
    """What promoting the set would change: each rule's live version and the staged one."""
    name = set_name(name)

    async def read() -> list[tuple[events.RuleUpsert | events.RuleDelete, events.Rule | None]]:
        async with open_sets() as sets:
            await sets.open_set(tenant, name)
            staged = await sets.store.changes(tenant, name)
            return [(c, await sets.rules.current(tenant, c.target.rule_id)) for c in staged]

    rows = asyncio.run(read())
    table = Table("rule", "live", "staged", "change", "live text", "staged text")
    for change, live in rows:
        new = change.rule if isinstance(change, events.RuleUpsert) else None
        before, after = _where_texts_differ(
            "" if live is None else live.text, "" if new is None else new.text
        )
        table.add_row(change.target.rule_id, "-" if live is None else str(live.version),
                      str(change.target.version), _change(live, new), before, after)  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} rules staged in {name}")


def _where_texts_differ(old: str, new: str, width: int = 40) -> tuple[str, str]:
    """Both texts from a little before their first difference (what a reviewer looks for)."""
    old, new = " ".join(old.split()), " ".join(new.split())
    first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                 min(len(old), len(new)))  # fmt: skip
    start = max(0, first - width // 3)

    def cut(text: str) -> str:
        return ("…" if start and text else "") + snippet(text[start:], width)

    return cut(old), cut(new)


def _change(live: events.Rule | None, new: events.Rule | None) -> str:
    if new is None:
        return "delete" if live is not None else "delete (not live)"
    if live is None:
        return "new"
    ignored = {"version"}
    before, after = live.model_dump(exclude=ignored), new.model_dump(exclude=ignored)
    changed = [field for field in after if after[field] != before.get(field)]
    return ", ".join(changed) if changed else "same content"


def _gate_passes(gate: Gate, evidence: ExamEvidence | None, info: ChangeSetInfo) -> bool:
    if evidence is None or evidence.revision != info.revision:
        errors.print(f"no exam of revision {info.revision} of {info.name}: run exam run "
                     f"--candidate {info.name} first", style="red", markup=False)  # fmt: skip
        return False
    table = Table("condition", "value", "holds", title=f"gate on exam {evidence.job_id}")
    results = gate.check(evidence)
    for condition, value, ok in results:
        table.add_row(condition.text, f"{value:.4g}", "yes" if ok else "[red]no[/]")
    console.print(table)
    return all(ok for _, _, ok in results)


def promote(
    name: str = typer.Argument(..., help="The change set."),
    tenant: str = TENANT,
    require: str | None = typer.Option(
        None,
        help="Promote only if the exam of the set's current revision meets this, e.g. "
        '"accuracy_delta >= -1pp and worst_category_delta >= -5pp".',
    ),
    timeout: float = TIMEOUT,
) -> None:
    """Make every staged version of the set live for the tenant, at once (one event). With
    --require, a gate that fails publishes nothing."""
    name = set_name(name)
    gate = Gate.parse(require) if require is not None else None

    async def read() -> ChangeSetInfo:
        async with open_sets() as sets:
            return await sets.open_set(tenant, name)

    info = asyncio.run(read())
    evidence = ExamEvidence.model_validate_json(info.evidence) if info.evidence else None
    if gate is not None and not _gate_passes(gate, evidence, info):
        errors.print(f"promote refused by the gate: {name} is unchanged and nothing was "
                     "published", style="red", markup=False)  # fmt: skip
        raise typer.Exit(1)
    event = events.ChangeSetPromote(
        tenant=tenant, name=name, revision=info.revision, publisher=publisher(), gate=require,
        exam_job=evidence.job_id if gate is not None and evidence is not None else None,
    )  # fmt: skip
    (confirmed,) = asyncio.run(_publish([event], timeout))
    if confirmed.outcome is IndexOutcome.REFUSED:
        why = (f"live versions at or above the staged ones: {', '.join(confirmed.conflicts)}"
               if confirmed.conflicts else "the set changed or closed meanwhile")  # fmt: skip
        errors.print(f"promote of {name} refused, nothing changed: {why}", style="red",
                     markup=False)  # fmt: skip
        raise typer.Exit(1)
    console.print(f"{name}: {info.members} rules live for {tenant} "
                  f"({confirmed.latency_ms:.0f} ms from the event to servable)")  # fmt: skip


def discard(
    name: str = typer.Argument(..., help="The change set."),
    tenant: str = TENANT,
    timeout: float = TIMEOUT,
) -> None:
    """Drop the set's staged versions; the live rules stay as they are."""
    name = set_name(name)
    event = events.ChangeSetDiscard(tenant=tenant, name=name, publisher=publisher())
    (confirmed,) = asyncio.run(_publish([event], timeout))
    if confirmed.outcome is IndexOutcome.REFUSED:
        errors.print(f"{name}: not discarded (promoted already, or no such set)", style="red",
                     markup=False)  # fmt: skip
        raise typer.Exit(1)
    console.print(f"{name}: discarded" + (" already" if confirmed.outcome is IndexOutcome.STALE
                                          else ""))  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add these commands to the ``rules`` group."""
    for command in (stage, changes, diff, promote, discard):
        app.command()(command)
