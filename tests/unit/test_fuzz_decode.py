"""Property: every hostile message on a consumed topic is rejected with its reason, never
crashes the decoder (a crash would redeliver it forever and stall the partition)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from shared import events
from shared.dlq import PoisonMessage, decode
from tests.fuzz import CONSUMED, Consumed, Message, bad_messages

MAX_BYTES = 64 * 1024
EXAMPLES = int(os.environ.get("ALIGNSTREAM_FUZZ_EXAMPLES", "300"))
"""Examples per topic (mutation testing runs fewer: it runs this test once per mutant)."""


@pytest.mark.parametrize("consumed", CONSUMED, ids=lambda c: c.topic.name)
def test_bad_messages_are_rejected_with_their_reason(consumed: Consumed) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bad_messages(consumed, max_bytes=MAX_BYTES))
    def check(message: Message) -> None:
        payload, reason = message
        with pytest.raises(PoisonMessage) as caught:
            decode(consumed.adapter, payload, max_bytes=MAX_BYTES)
        if reason is not None:
            assert caught.value.reason == reason, caught.value.detail

    check()


@pytest.mark.parametrize("consumed", CONSUMED, ids=lambda c: c.topic.name)
def test_valid_events_of_the_topic_decode(consumed: Consumed) -> None:
    for event in consumed.valid:
        assert decode(consumed.adapter, events.encode(event), max_bytes=MAX_BYTES) == event
