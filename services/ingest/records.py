"""How ingest reads the rules topic: signed records (when signing is on), decoded into rule
events or jurisdiction trees, each under its own key. ``memory rebuild`` reads the log through
the same subscription, so a replay accepts exactly what ingest accepted."""

from __future__ import annotations

from shared import events
from shared.guards import rule_key_guard
from shared.settings import KafkaSettings
from shared.signing import RecordSigner
from shared.subscription import Subscription
from shared.topics import RULES_EVENTS, TopicSpec


def rule_records(
    kafka: KafkaSettings,
    *,
    topic: TopicSpec = RULES_EVENTS,
    max_records: int = 500,
    batch_timeout_ms: int | None = None,
    group_id: str | None = None,
) -> Subscription[events.RulesTopicEvent]:
    """``topic``: the rule log, or its fast lane (``rules.live``, same records and checks)."""
    return Subscription(
        topic,
        events.RULES_TOPIC_EVENT,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        group_id=group_id,
        authenticate=RecordSigner.for_rules(kafka).check,
        checks=(rule_key_guard,),
    )
