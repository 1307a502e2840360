"""Ingest's confirmations: one ``RuleIndexed`` per rule event, applied or stale (clients wait
for them: read-your-writes), counted and timed from the event's creation."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared import events
from shared.metrics import LATENCY_BUCKETS_S

RULES_APPLIED = Counter(
    "alignstream_rules_indexed_total",
    "Rule events processed by ingest, by operation and outcome (applied; copy: applied already "
    "by another copy of the event, the other lane's or another instance's; stale).",
    ["op", "outcome"],
)
EVENT_TO_SERVABLE = Histogram(
    "alignstream_rule_event_to_servable_seconds",
    "From a rule event's creation to the rule being searchable.",
    buckets=LATENCY_BUCKETS_S,
)


def confirm(
    event: events.RulesTopicEvent,
    outcome: events.IndexOutcome,
    conflicts: tuple[str, ...] = (),
    *,
    copy: bool = False,
) -> events.RuleIndexed:
    """``copy``: the event's version was applied by another copy of it (confirmed applied, as
    the edit is servable; counted apart, and not timed again)."""
    tenant, rule_id, version = event.target
    change_set = event.name if isinstance(event, events.ChangeSetEvent) else None
    confirmation = events.RuleIndexed(
        change_set=change_set,
        conflicts=conflicts,
        tenant=tenant,
        rule_id=rule_id,
        version=version,
        op=event.op,
        outcome=outcome,
        source_event_id=event.event_id,
        event_created_at=event.created_at,
    )
    RULES_APPLIED.labels(event.op, "copy" if copy else outcome.value).inc()
    if outcome is events.IndexOutcome.APPLIED and not copy:
        EVENT_TO_SERVABLE.observe(confirmation.latency_ms / 1000.0)
    return confirmation
