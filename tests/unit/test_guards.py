"""The checks a consumer applies to decoded messages before processing them: each names its
reason for the dead-letter topic, and lets a well-formed message through unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared import events
from shared.dlq import PoisonMessage, Record
from shared.guards import grounded_reply_guard, reply_topic_guard, rule_key_guard
from shared.topics import TopicNames
from tests.samples import sample_rule

TOPICS = TopicNames("p.")


def record(key: bytes | None = None) -> Record:
    return Record(topic="p.chat.requests", partition=0, offset=1, key=key, value=b"{}",
                  headers={})  # fmt: skip


def chat(reply_topic: str | None) -> events.ChatRequest:
    return events.ChatRequest(
        request_id="r1",
        tenant="acme",
        reply_topic=reply_topic,
        messages=(events.ChatMessage(role="user", content="Q?"),),
    )


@pytest.mark.parametrize("topic", [None, "p.replies.gw-1", "p.chat.responses"])
def test_allowed_reply_topics_pass(topic: str | None) -> None:
    reply_topic_guard(TOPICS)(record(), chat(topic))


@pytest.mark.parametrize(
    "topic", ["p.rules.events", "p.chat.cancels", "q.replies.gw-1", "p.replies.gw-1\n"]
)
def test_any_other_reply_topic_is_poison_with_its_reason(topic: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        reply_topic_guard(TOPICS)(record(), chat(topic))
    assert caught.value.reason == "reply_topic_not_allowed"
    assert repr(topic[:300]) in caught.value.detail
    grounded = events.GroundedRequest(request=chat(topic), received_at=datetime.now(UTC))
    with pytest.raises(PoisonMessage, match="not a reply topic"):
        grounded_reply_guard(TOPICS)(record(), grounded)
    grounded_reply_guard(TOPICS)(record(), grounded.model_copy(update={"request": chat(None)}))


def test_a_rule_event_must_travel_under_its_own_key() -> None:
    event = events.RuleUpsert(rule=sample_rule(rule_id="refunds"))
    rule_key_guard(record(event.key.encode()), event)
    for key in (None, b"", b"other", event.key.encode() + b" "):
        with pytest.raises(PoisonMessage) as caught:
            rule_key_guard(record(key), event)
        assert caught.value.reason == "key_mismatch"
        assert repr(event.key) in caught.value.detail


def test_a_hostile_value_is_quoted_in_the_reason_only_up_to_its_bound() -> None:
    topic = "p.replies." + "x" * 400
    with pytest.raises(PoisonMessage) as caught:
        reply_topic_guard(TOPICS)(record(), chat(topic))
    assert repr(topic[:300]) in caught.value.detail
    assert repr(topic[:301]) not in caught.value.detail
    event = events.RuleUpsert(rule=sample_rule(rule_id="refunds"))
    key = b"k" * 400
    with pytest.raises(PoisonMessage) as mismatch:
        rule_key_guard(record(key), event)
    assert repr(key[:200]) in mismatch.value.detail
    assert repr(key[:201]) not in mismatch.value.detail
