"""How ingest reads the rules topic: signed records (when signing is on), decoded into rule
events or jurisdiction trees, each under its own key. ``memory rebuild`` reads the log through
the same subscription, so a replay accepts exactly what ingest accepted."""

from __future__ import annotations

from shared import events
from shared.guards import rule_key_guard
from shared.service import Subscription
from shared.settings import KafkaSettings
from shared.signing import RuleSigner
from shared.topics import RULES_EVENTS


def rule_records(
    kafka: KafkaSettings, *, max_records: int = 500, batch_timeout_ms: int | None = None
) -> Subscription[events.RulesTopicEvent]:
    return Subscription(
        RULES_EVENTS,
        events.RULES_TOPIC_EVENT,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        authenticate=RuleSigner.from_settings(kafka).check,
        checks=(rule_key_guard,),
    )
