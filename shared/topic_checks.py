"""Is each topic on the cluster the topic ``shared/topics.py`` specifies?

A topic created by accident (a broker's auto-creation) gets the broker's defaults: for
``rules.events``, the source of truth, that means a log that deletes old rules instead of
compacting them. ``topics create`` and ``topics check`` report every difference; services refuse
to start on a ``rules.events`` the broker reports as not compacted. Some brokers (Tansu) do not
report topic configs; the cleanup policy is then "not reported", never assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import KafkaError

from shared.kafka import admin_client
from shared.kafka_configs import config_values
from shared.settings import KafkaSettings
from shared.topics import RULES_EVENTS, TopicSpec, all_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicState:
    partitions: int
    cleanup_policy: str | None
    """None: the broker did not report it."""


@dataclass(frozen=True, slots=True)
class TopicProblem:
    topic: str
    problem: str
    critical: bool
    """The topic cannot serve its role (a non-compacted source of truth)."""

    def __str__(self) -> str:
        return f"{self.topic}: {self.problem}"


class TopicMisconfigured(RuntimeError):
    """A topic the services rely on differs from its specification in a way that loses data."""


def problems_of(
    spec: TopicSpec, name: str, state: TopicState | None, settings: KafkaSettings
) -> list[TopicProblem]:
    """How a topic on the cluster differs from its specification (pure)."""
    if state is None:
        return [TopicProblem(name, "missing (alignstream topics create)", critical=False)]
    found: list[TopicProblem] = []
    wanted = settings.partitions_of(spec)
    if state.partitions != wanted:
        fix = " (alignstream topics grow adds them)" if state.partitions < wanted else ""
        found.append(TopicProblem(name, f"{state.partitions} partitions, the spec says {wanted}"
                                  + fix, critical=False))  # fmt: skip
    if state.cleanup_policy is not None and state.cleanup_policy != spec.cleanup_policy:
        found.append(TopicProblem(
            name,
            f"cleanup.policy={state.cleanup_policy}, the spec says {spec.cleanup_policy}",
            critical=spec.cleanup_policy == "compact",
        ))  # fmt: skip
    return found


async def topic_states(settings: KafkaSettings, names: Iterable[str]) -> dict[str, TopicState]:
    """The partition count and cleanup policy of each existing topic among ``names``."""
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n in existing]
        if not wanted:
            return {}
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(wanted)}
        policies = await _cleanup_policies(admin, wanted)
        return {n: TopicState(partitions.get(n, 0), policies.get(n)) for n in wanted}
    finally:
        await admin.close()


async def _cleanup_policies(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, str]:
    """Each topic's reported cleanup.policy. A principal without DescribeConfigs rights (or a
    broker that does not answer it) leaves them unreported: a check never stops a service for
    what it cannot see."""
    try:
        return await config_values(admin, ConfigResourceType.TOPIC, names, "cleanup.policy")
    except KafkaError as exc:
        log.warning("topic configs not readable", extra={"error": str(exc)})
        return {}


async def check_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec] | None = None
) -> list[TopicProblem]:
    names = settings.topics
    wanted = list(specs if specs is not None else all_topics())
    states = await topic_states(settings, [names(s) for s in wanted])
    return [p for s in wanted for p in problems_of(s, names(s), states.get(names(s)), settings)]


async def require_compacted_rules(settings: KafkaSettings) -> None:
    """Refuse to run on a rules log that deletes old rules."""
    critical = [p for p in await check_topics(settings, [RULES_EVENTS]) if p.critical]
    if critical:
        raise TopicMisconfigured(
            f"{critical[0]}: it would delete rules instead of keeping the latest version of "
            "each; recreate it (alignstream memory rebuild replays it into Redis afterwards)"
        )
