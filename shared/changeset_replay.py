"""Replaying recorded requests against a change set: for each answered request of the audit
trail in a time window, the rules retrieval gives it now from the live memory and from the
memory as the set would make it; a request counts as changed when the two differ (by rule id
and version). Requests recorded with only their question's hash cannot be replayed (counted
apart), nor those whose strategy searches no rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.errors import Hinted
from shared.events import AuditEntry, RuleScope
from shared.strategies import spec_of

Grounding = Callable[[AuditEntry, RuleScope], Awaitable[tuple[str, ...]]]
"""The rules (``id@version``) a request's question is given under a scope."""


def parse_window(text: str) -> tuple[datetime | None, datetime | None]:
    """``FROM..TO``: ISO times (a date alone is midnight, UTC when no zone is given), either
    side may be empty."""
    since, separator, until = text.partition("..")
    if not separator:
        raise Hinted(f"cannot read the window {text!r}", "write FROM..TO, e.g. 2026-12-01..")
    try:
        bounds = [_utc(datetime.fromisoformat(s.strip())) if s.strip() else None
                  for s in (since, until)]  # fmt: skip
    except ValueError as exc:
        raise Hinted(f"cannot read the window {text!r}: {exc}",
                     "ISO times, e.g. 2026-12-01T09:00+00:00..2026-12-02") from None  # fmt: skip
    return bounds[0], bounds[1]


def _utc(moment: datetime) -> datetime:
    """A time without a zone is UTC (recorded requests carry theirs)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def scope_of(entry: AuditEntry, change_set: str | None) -> RuleScope:
    """The scope the request was searched under (the nodes it resolved to, whose ancestors and
    ``global`` apply too; every jurisdiction when it searched them all), on the day it was
    answered."""
    searched = entry.searched_scope
    every = searched is not None and searched.every_jurisdiction
    nodes = () if searched is None or every else searched.nodes
    return RuleScope(jurisdictions=nodes[:32], any_jurisdiction=every,
                     as_of=entry.answered_at.date(), change_set=change_set)  # fmt: skip


@dataclass
class ReplayReport:
    replayed: int = 0
    changed: int = 0
    hashed_only: int = 0
    """Recorded without the question's text: cannot be replayed."""
    not_searching: int = 0
    gained: Counter[str] = field(default_factory=Counter)
    """Rules (``id@version``) the set adds to requests' grounding, with how many requests."""
    lost: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    """A few changed requests: (request id, live rules, candidate rules)."""


async def replay(
    entries: Iterable[AuditEntry],
    change_set: str,
    grounding: Grounding,
    *,
    until: datetime | None = None,
    examples: int = 10,
) -> ReplayReport:
    report = ReplayReport()
    for entry in entries:
        if until is not None and entry.answered_at > until:
            continue
        if not spec_of(entry.strategy).searches:
            report.not_searching += 1
            continue
        if not entry.question:
            report.hashed_only += 1
            continue
        report.replayed += 1
        live = await grounding(entry, scope_of(entry, None))
        candidate = await grounding(entry, scope_of(entry, change_set))
        if set(live) != set(candidate):
            report.changed += 1
            report.gained.update(set(candidate) - set(live))
            report.lost.update(set(live) - set(candidate))
            if len(report.examples) < examples:
                report.examples.append((entry.request_id, live, candidate))
    return report
