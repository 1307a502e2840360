"""Ingest's confirmations: one ``RuleIndexed`` per rule event, applied or stale (clients wait
for them: read-your-writes), counted and timed from the event's creation."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared import events
from shared.metrics import LATENCY_BUCKETS_S

RULES_APPLIED = Counter(
    "alignstream_rules_indexed_total",
    "Rule events processed by ingest, by operation and outcome (applied or stale).",
    ["op", "outcome"],
)
EVENT_TO_SERVABLE = Histogram(
    "alignstream_rule_event_to_servable_seconds",
    "From a rule event's creation to the rule being searchable.",
    buckets=LATENCY_BUCKETS_S,
)


def confirm(
    event: events.RulesTopicEvent, outcome: events.IndexOutcome, conflicts: tuple[str, ...] = ()
) -> events.RuleIndexed:
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
    RULES_APPLIED.labels(event.op, outcome.value).inc()
    if outcome is events.IndexOutcome.APPLIED:
        EVENT_TO_SERVABLE.observe(confirmation.latency_ms / 1000.0)
    return confirmation
