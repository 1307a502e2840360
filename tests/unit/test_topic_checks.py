"""A topic that differs from its specification is reported; a rules log that would delete
rules is critical."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from shared import topic_checks
from shared.settings import KafkaSettings
from shared.topic_checks import TopicMisconfigured, TopicProblem, TopicState, problems_of
from shared.topic_growth import plan_growth
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS, RULES_EVENTS


def test_an_auto_created_rules_topic_is_critical() -> None:
    # What a broker's auto-creation gives: its default partitions, cleanup.policy=delete.
    found = problems_of(RULES_EVENTS, "rules.events", TopicState(4, "delete"), KafkaSettings())
    assert [(str(p), p.critical) for p in found] == [
        ("rules.events: 4 partitions, the spec says 6 (alignstream topics grow adds them)", False),
        ("rules.events: cleanup.policy=delete, the spec says compact", True),
    ]


def test_a_topic_as_specified_has_no_problem_and_an_unreported_policy_is_not_guessed() -> None:
    settings = KafkaSettings()
    assert problems_of(RULES_EVENTS, "rules.events", TopicState(6, "compact"), settings) == []
    assert problems_of(RULES_EVENTS, "rules.events", TopicState(6, None), settings) == []
    assert problems_of(CHAT_REQUESTS, "x", TopicState(CHAT_REQUESTS.partitions, "delete"),
                       settings) == []  # fmt: skip


def test_a_topics_own_setting_wins_and_growth_is_planned_from_it() -> None:
    settings = KafkaSettings(partitions={"chat.requests": 48}, partitions_override=2)
    assert settings.partitions_of(CHAT_REQUESTS) == 48
    assert settings.partitions_of(RULES_EVENTS) == 2  # the override of every other topic
    states = {"chat.requests": 24, "rules.events": 4, "chat.grounded": 2}
    plan = plan_growth(settings, states, [CHAT_REQUESTS, RULES_EVENTS, CHAT_GROUNDED])
    assert [(g.topic, g.had, g.wanted, g.grows) for g in plan] == [
        ("chat.requests", 24, 48, True), ("rules.events", 4, 2, False)]  # fmt: skip
    with pytest.raises(ValueError, match=r"no such topic: chat\.unknown"):
        KafkaSettings(partitions={"chat.unknown": 3})


def test_partitions_follow_the_override_and_missing_topics_are_named() -> None:
    small = KafkaSettings(partitions_override=1)
    assert problems_of(CHAT_REQUESTS, "chat.requests", TopicState(1, None), small) == []
    (missing,) = problems_of(CHAT_REQUESTS, "p.chat.requests", None, small)
    assert "missing" in str(missing)
    assert not missing.critical


async def test_services_refuse_a_rules_log_that_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    async def reported(settings: KafkaSettings, specs: object = None) -> list[TopicProblem]:
        return problems_of(RULES_EVENTS, "rules.events", TopicState(6, "delete"), settings)

    monkeypatch.setattr(topic_checks, "check_topics", reported)
    with pytest.raises(TopicMisconfigured, match=r"cleanup\.policy=delete"):
        await topic_checks.require_compacted_rules(KafkaSettings())


class ForbiddenAdmin:
    """A principal without DescribeConfigs rights."""

    async def describe_configs(self, resources: object) -> None:
        raise TopicAuthorizationFailedError


async def test_unreadable_topic_configs_are_unreported_not_fatal() -> None:
    admin: Any = ForbiddenAdmin()
    assert await topic_checks._cleanup_policies(admin, ["rules.events"]) == {}
