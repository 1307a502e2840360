"""Checks of decoded messages that a consumer applies before processing them (``Inbox`` checks).

Each raises ``PoisonMessage`` with its reason, so the message is dead-lettered instead of
processed: a field another tenant or client controls must never steer a service somewhere it
should not go.
"""

from __future__ import annotations

from shared import events
from shared.dlq import Check, PoisonMessage, Record
from shared.topics import TopicNames


def reply_topic_guard(topics: TopicNames) -> Check[events.ChatRequest]:
    """A chat request may name only an allowed reply topic (``TopicNames.reply_allowed``)."""

    def check(record: Record, request: events.ChatRequest) -> None:
        if request.reply_topic is not None and not topics.reply_allowed(request.reply_topic):
            raise PoisonMessage(
                "reply_topic_not_allowed",
                f"reply_topic {request.reply_topic[:300]!r} is not a reply topic of this "
                "deployment",
            )

    return check


def grounded_reply_guard(topics: TopicNames) -> Check[events.GroundedRequest]:
    """The same check on the request inside a grounded request (defence in depth: generation
    does not trust that retrieval checked)."""
    inner = reply_topic_guard(topics)

    def check(record: Record, grounded: events.GroundedRequest) -> None:
        inner(record, grounded.request)

    return check


def rule_key_guard(record: Record, event: events.RulesTopicEvent) -> None:
    """A rule event under another rule's key would defeat compaction (the topic would keep a
    stale record for the rule, and replays would restore it)."""
    if record.key != event.key.encode():
        raise PoisonMessage(
            "key_mismatch",
            f"record key {(record.key or b'')[:200]!r} is not the rule's key {event.key!r}",
        )
