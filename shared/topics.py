"""The one place that names every topic: its key, partitions, cleanup policy and value model.

Topics are created explicitly at startup (``shared.kafka.ensure_topics``); nothing relies on broker
auto-creation (whose defaults differ between brokers). A deployment-wide prefix lets several
environments, or test sessions, share one cluster.

Partitions bound how many instances of a consumer group do work: the chat path (retrieval reads
``chat.requests``, generation ``chat.grounded``: one partition per GPU pod at most) is sized for a
fleet of 24 generation pods. A deployment sets its own per topic (``KafkaSettings.partitions``,
the chart's ``kafka.partitions``); growing a live topic: ``alignstream topics grow``.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from shared import events

DLQ_SUFFIX = ".dlq"
MAX_PARTITIONS = 1024
"""The most partitions a topic may be given (a setting's bound, not a broker's)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    """Name without the deployment prefix."""
    key: str
    """What the Kafka key holds; it fixes ordering and compaction."""
    value: Any
    """The event model the topic carries, or a union of them (``rules.events``)."""
    partitions: int
    cleanup_policy: Literal["compact", "delete"] = "delete"
    retention_ms: int | None = None
    """None: the broker default. Ignored for compacted topics."""
    description: str = ""
    dead_letters: str | None = None
    """Name of its dead-letter topic (None: its own, ``<name>.dlq``)."""

    @property
    def configs(self) -> dict[str, str]:
        configs: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None and self.cleanup_policy == "delete":
            configs["retention.ms"] = str(self.retention_ms)
        return configs

    @property
    def value_models(self) -> tuple[type[events.Event], ...]:
        """The event models the topic carries."""
        members = typing.get_args(self.value) or (self.value,)
        return tuple(members)

    def dead_letter(self) -> TopicSpec:
        """The topic that receives this topic's messages that could not be processed."""
        return TopicSpec(
            name=self.dead_letters or self.name + DLQ_SUFFIX,
            key="same key as the source message",
            value=events.DeadLetter,
            partitions=1,
            cleanup_policy="delete",
            retention_ms=14 * 24 * 3600 * 1000,
            description=f"messages from {self.name} that failed, with the reason",
        )


DAY_MS = 24 * 3600 * 1000

RULES_EVENTS = TopicSpec(
    "rules.events",
    key="tenant:rule_id",
    value=events.RulesTopicEvent,
    partitions=6,
    cleanup_policy="compact",
    description="source of truth for rules; Redis is rebuilt by replaying it",
)
RULES_LIVE = TopicSpec(
    "rules.live",
    key="tenant:rule_id",
    value=events.RulesTopicEvent,
    partitions=3,
    retention_ms=DAY_MS,
    description=(
        "fast lane: a copy of each small edit, published after rules.events acknowledged it; "
        "ingest applies it ahead of bulk loads queued in rules.events (the truth stays there)"
    ),
)
RULES_INDEXED = TopicSpec(
    "rules.indexed",
    key="tenant:rule_id",
    value=events.RuleIndexed,
    partitions=3,
    retention_ms=DAY_MS,
    description="ingest confirms each applied rule event (read-your-writes)",
)
CHAT_REQUESTS = TopicSpec(
    "chat.requests",
    key="tenant:conversation_id",
    value=events.ChatRequest,
    partitions=24,
    retention_ms=7 * DAY_MS,
    description="questions from clients and exam jobs",
)
CHAT_GROUNDED = TopicSpec(
    "chat.grounded",
    key="tenant:conversation_id",
    value=events.GroundedRequest,
    partitions=24,
    retention_ms=DAY_MS,
    description="requests with their retrieved rules, for generation",
)
CHAT_RESPONSES = TopicSpec(
    "chat.responses",
    key="tenant:request_id",
    value=events.ChatResponse,
    partitions=12,
    retention_ms=7 * DAY_MS,
    description="default reply topic of chat requests",
)
CHAT_TOKENS = TopicSpec(
    "chat.tokens",
    key="tenant:request_id",
    value=events.ChatToken,
    partitions=12,
    retention_ms=DAY_MS,
    description="answer text as it is generated, for requests that ask to stream",
)
CHAT_CANCELS = TopicSpec(
    "chat.cancels",
    key="tenant:request_id",
    value=events.ChatCancel,
    partitions=3,
    retention_ms=3600 * 1000,
    description="requests a client no longer waits for; every generation instance reads all",
)
EXAM_JOBS = TopicSpec(
    "exam.jobs",
    key="job_id",
    value=events.ExamJob,
    partitions=3,
    retention_ms=30 * DAY_MS,
    description="exam jobs for the grading service",
)
EXAM_ANSWERS = TopicSpec(
    "exam.answers",
    key="tenant:request_id",
    value=events.ChatResponse,
    partitions=12,
    retention_ms=7 * DAY_MS,
    description="reply topic of exam questions",
)
EXAM_RESULTS = TopicSpec(
    "exam.results",
    key="job_id",
    value=events.ExamResult,
    partitions=3,
    retention_ms=30 * DAY_MS,
    description="exam progress and final results",
)

RESEARCH_JOBS = TopicSpec(
    "research.jobs",
    key="job_id",
    value=events.ResearchJob,
    partitions=3,
    retention_ms=30 * DAY_MS,
    description="research jobs (DRPO prompt search, C2-SYN, IterAlign rounds) for grading",
)
RESEARCH_PROGRESS = TopicSpec(
    "research.progress",
    key="job_id",
    value=events.ResearchProgress,
    partitions=3,
    retention_ms=30 * DAY_MS,
    description="research job progress and final results",
)

AUDIT_ENTRIES = TopicSpec(
    "audit.entries",
    key="tenant",
    value=events.AuditRecord,
    partitions=3,
    retention_ms=7 * DAY_MS,
    description="one entry per answered request, one tenant's entries batched per record "
    "(generation), for the audit chainer (ingest)",
)
AUDIT_LOG = TopicSpec(
    "audit.log",
    key="tenant",
    value=events.AuditLink,
    partitions=3,
    retention_ms=-1,
    description="the audit trail: each tenant's entries in a hash chain, kept forever",
)

RULE_LOGS: tuple[TopicSpec, ...] = (RULES_EVENTS, RULES_LIVE)
"""The topics that carry rule events (signed when signing is on; ingest reads both)."""

TOPICS: tuple[TopicSpec, ...] = (
    RULES_EVENTS,
    RULES_LIVE,
    RULES_INDEXED,
    CHAT_REQUESTS,
    CHAT_GROUNDED,
    CHAT_RESPONSES,
    CHAT_TOKENS,
    CHAT_CANCELS,
    EXAM_JOBS,
    EXAM_ANSWERS,
    EXAM_RESULTS,
    RESEARCH_JOBS,
    RESEARCH_PROGRESS,
    AUDIT_ENTRIES,
    AUDIT_LOG,
)
"""Every topic the services use, without their dead-letter topics."""


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic including one dead-letter topic per consumed topic."""
    return TOPICS + tuple(spec.dead_letter() for spec in TOPICS)


REPLY_TOPICS: tuple[TopicSpec, ...] = (CHAT_RESPONSES, EXAM_ANSWERS)
"""The configured topics a chat request may name as its ``reply_topic``."""

CLIENT_REPLY_PREFIX = "replies."
"""Clients with a reply topic of their own (e.g. one per gateway instance) name it
``<deployment prefix>replies.<name>``; no other topic may receive replies, so a request cannot
make generation write into ``rules.events`` or any other topic."""

_KAFKA_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Resolves topic names under a deployment prefix (``""`` in production by default)."""

    prefix: str = ""

    def __call__(self, spec: TopicSpec) -> str:
        return self.prefix + spec.name

    def dlq(self, spec: TopicSpec) -> str:
        return self.prefix + spec.dead_letter().name

    def client_replies(self, name: str) -> str:
        """A client's own reply topic (create it before sending requests that name it)."""
        return self.prefix + CLIENT_REPLY_PREFIX + name

    def reply_allowed(self, topic: str) -> bool:
        """Whether generation may publish a response to ``topic``: a configured reply topic,
        or a client's own reply topic."""
        return topic in (self(spec) for spec in REPLY_TOPICS) or self.is_client_replies(topic)

    def is_client_replies(self, topic: str) -> bool:
        """Whether ``topic`` is a valid name under the client reply prefix. Such a topic has
        one reader, so it also carries the answer's text as it streams (no shared
        ``chat.tokens`` to filter)."""
        client_prefix = self.prefix + CLIENT_REPLY_PREFIX
        return (
            topic.startswith(client_prefix)
            and len(topic) > len(client_prefix)
            and _KAFKA_TOPIC_NAME.fullmatch(topic) is not None
            and not topic.endswith(DLQ_SUFFIX)
        )


def client_replies_spec(name: str) -> TopicSpec:
    """The specification of a client's own reply topic ``replies.<name>`` (e.g. one gateway
    instance's): responses and the token pieces of its streaming requests, read by that client
    alone, kept briefly."""
    return TopicSpec(
        CLIENT_REPLY_PREFIX + name,
        key="tenant:request_id",
        value=events.ChatResponse | events.ChatToken,
        partitions=3,
        retention_ms=3600 * 1000,
        description="one client's answers and streamed pieces (e.g. a gateway instance's)",
        # Shared, so instances that come and go leave no dead-letter topic behind.
        dead_letters=CHAT_RESPONSES.name + DLQ_SUFFIX,
    )
