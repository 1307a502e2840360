"""No poison message, ever: for every consumed topic, a stream of hostile messages followed by
valid ones, through all four services with a producer limit equal to the message limit (as a
Kafka broker's would be).

Hostile here includes what is valid on its own but derives something that cannot be published:
a question whose grounded form is over the limit, an answer over the limit, a reply topic that
does not exist. Each hostile message gets exactly one outcome (a dead letter with its reason, an
error response, or a failed job), every valid message after them is served, and no handler
sees a message more than a few times (the bug this guards looped thousands of times a second).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.kafka import admin_client
from shared.settings import KafkaSettings
from shared.testing.backends import ScriptedBackend
from shared.testing.topics import TopicReader
from shared.topic_tail import TopicTail, collect_replies
from shared.topics import (
    CHAT_GROUNDED,
    CHAT_REQUESTS,
    CHAT_RESPONSES,
    EXAM_ANSWERS,
    EXAM_JOBS,
    RESEARCH_JOBS,
    RULES_EVENTS,
    RULES_INDEXED,
    TopicSpec,
)
from tests.samples import sample_rule

LIMIT = 65_536  # service_settings' max_message_bytes
MAX_DELIVERIES = 3
"""A message may be seen again after a rebalance; never more often than this on average."""


class Triples(ScriptedBackend):
    """Answers with the prompt's last message three times: a long question gets an answer
    over the message limit."""

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        content = request.messages[-1]["content"]
        return GenerationOutput(text=content * 3 if len(content) > 10_000 else "A. " + content,
                                finish_reason="stop")  # fmt: skip


@pytest.fixture
async def generation(
    service_settings: dict[str, Any], prefix: str, kafka_settings: KafkaSettings
) -> AsyncIterator[GenerationService]:
    # A missing reply topic is found out after the metadata wait: keep it short.
    kafka = kafka_settings.model_copy(update={"request_timeout_ms": 3000})
    settings = GenerationSettings(**{**service_settings, "kafka": kafka},
                                  group_id=f"{prefix}.generation")  # fmt: skip
    async with GenerationService(settings, backend=Triples()) as service:
        yield service


def consumed(service: str, topic: TopicSpec) -> float:
    labels = {"service": service, "topic": topic.name}
    return REGISTRY.get_sample_value("alignstream_messages_consumed_total", labels) or 0.0


async def records_on(kafka: KafkaSettings, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


def question(text: str, **fields: Any) -> events.ChatRequest:
    return events.ChatRequest(
        tenant=fields.pop("tenant", "acme"),
        messages=(events.ChatMessage(role=events.Role.USER, content=text),),
        **fields,
    )


def grounded(request: events.ChatRequest) -> events.GroundedRequest:
    return events.GroundedRequest(request=request, received_at=events.utcnow())


STRAY_REPLY = events.ChatResponse(
    request_id="r", tenant="acme", metadata={"exam_job": "nope", "exam_item": "x"}
)
WIDE = events.RuleScope(top_k=5, token_budget=32_000)


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.mark.timeout(240)
async def test_hostile_then_valid_on_every_topic(
    ingest: IngestService,
    retrieval: RetrievalService,
    generation: GenerationService,
    grading: GradingService,
    client_broker: KafkaBroker,
    kafka_settings: KafkaSettings,
    reader: TopicReader,
    exam_root: Path,
) -> None:
    topics = kafka_settings.topics
    big_rules = [sample_rule(tenant="bulk", rule_id=f"long-{i}", text="法" * 8000)
                 for i in range(5)]  # fmt: skip
    before = {(s, t): consumed(s, t) for s, t in SUBSCRIBED}
    async with AlignstreamClient(kafka_settings) as client:
        await client.publish_rules([events.RuleUpsert(rule=r) for r in big_rules], wait=True)

    # Hostile messages, each with the dead-letter reason it must get -----------------------
    wrong_key = events.RuleUpsert(rule=sample_rule(rule_id="victim"))
    to_rules = question("hi", reply_topic=topics(RULES_EVENTS))
    bad_name = question("hi", reply_topic="no such topic!")
    gone = grounded(question("where does this go?", reply_topic=topics.client_replies("gone")))
    lettered: dict[TopicSpec, list[tuple[bytes, bytes, str]]] = {
        RULES_EVENTS: [
            (b"k1", b"x" * 100_000, "oversized"),
            (b"k2", b"\xff\xfe", "invalid_json"),
            (b"acme:other", events.encode(wrong_key), "key_mismatch"),
        ],
        CHAT_REQUESTS: [
            (b"k3", b"{" * (LIMIT + 1), "oversized"),
            (b"k4", events.encode(to_rules), "reply_topic_not_allowed"),
            (b"k5", events.encode(bad_name), "reply_topic_not_allowed"),
        ],
        CHAT_GROUNDED: [
            (b"k6", b"y" * (LIMIT * 2), "oversized"),
            (b"k7", events.encode(grounded(to_rules)), "reply_topic_not_allowed"),
            # A reply topic that does not exist: dead-lettered before it takes a slot (the
            # local broker would create it on first use; generation reads the topic list).
            (b"k8", events.encode(gone), "unpublishable_reply"),
        ],
        EXAM_JOBS: [(b"k9", b"z" * (LIMIT + 1), "oversized")],
        RESEARCH_JOBS: [
            (b"k12", b"r" * (LIMIT + 1), "oversized"),
            (
                b"k13",
                b'{"kind": "research.job", "v": 1, "tenant": "acme", "spec": {"method": "nope"}}',
                "invalid_payload",
            ),
        ],
        EXAM_ANSWERS: [
            (b"k10", events.encode(STRAY_REPLY), "unknown_exam_job"),
            (b"k11", b"[]", "invalid_payload"),
        ],
    }
    # Valid alone, but what they derive is over the limit: answered with an error response.
    derived = [
        question("问" * 15_000, tenant="bulk", scope=WIDE),
        question("Q" * 40_000, strategy=events.Strategy.BASE),  # its answer is 120 KB
    ]
    # Jobs that cannot start: each ends FAILED with a reason, none loops.
    (exam_root / "acme" / "binary.csv").write_bytes(b"id,question,A,B,answer\n1,\xff\xfe,a,b,A\n")
    (exam_root / "acme" / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (exam_root / "acme" / "huge_field.csv").write_text(
        'id,question,A,B,answer\n1,"' + "q" * 200_000 + '",a,b,A\n'
    )
    failing = {
        "/etc/passwd": "not a path inside",
        "../../../../etc/passwd": "not a path inside",
        "binary.csv": "cannot be read",
        "deep.jsonl": "invalid JSON",
        "huge_field.csv": "cannot be read",
        "missing.csv": "no such file",
    }
    bad_jobs = [events.ExamJob(tenant="acme", dataset=name) for name in failing]

    for spec, messages in lettered.items():
        for key, body, _ in messages:
            await client_broker.publish(body, topics(spec), key=key)

    # Then valid traffic on every topic ----------------------------------------------------
    rules = [sample_rule(rule_id=f"ok-{i}", text=f"Valid rule {i}.") for i in range(3)]
    valid = [question(f"valid question {i}?") for i in range(5)]
    job = events.ExamJob(tenant="acme", dataset="exam_en.jsonl",
                         strategies=(events.Strategy.BASE,))  # fmt: skip
    async with (
        AlignstreamClient(kafka_settings) as client,
        TopicTail(kafka_settings, topics(CHAT_RESPONSES)) as responses,
    ):
        for request in derived + valid:
            await client.send(CHAT_REQUESTS, request)
        confirmed = await client.publish_rules([events.RuleUpsert(rule=r) for r in rules],
                                               wait=True, timeout_s=60)  # fmt: skip
        replies = await collect_replies(
            responses, [(r.tenant, r.request_id) for r in derived + valid], timeout_s=120
        )
        results = [await client.run_exam(j, timeout_s=60) for j in [*bad_jobs, job]]

    # Every valid message was served.
    assert [c.outcome for c in confirmed] == [events.IndexOutcome.APPLIED] * 3
    assert all(replies[r.request_id].ok for r in valid)
    assert results[-1].status is events.JobStatus.DONE
    assert results[-1].answered == 3
    # Derived messages over the limit became one error response each.
    for request in derived:
        reply = replies[request.request_id]
        assert not reply.ok
        assert reply.error is not None
        assert reply.error.kind is events.ErrorKind.INVALID_REQUEST
        assert "limit" in reply.error.message
    # Jobs that cannot start failed with a reason naming the path as given.
    for result, (name, reason) in zip(results, failing.items(), strict=False):
        assert result.status is events.JobStatus.FAILED, name
        assert result.error is not None
        assert reason in result.error, (name, result.error)
        assert str(exam_root) not in result.error  # never where a path resolved to

    # Every hostile message was dead-lettered exactly once, with its reason.
    for spec, messages in lettered.items():
        letters = [events.DeadLetter.model_validate_json(r.value)
                   for r in await reader.read(spec, dlq=True, count=len(messages))]  # fmt: skip
        assert Counter((letter.original_sha256, letter.reason) for letter in letters) == Counter(
            (sha(body), reason) for _, body, reason in messages
        ), spec.name
        assert all(len(events.encode(letter)) <= LIMIT for letter in letters)
        with pytest.raises(AssertionError):  # and nothing more arrives
            await reader.read(spec, dlq=True, count=len(messages) + 1, timeout_s=2)

    # Nothing was answered to the missing reply topic (nor did publishing create it).
    admin = admin_client(kafka_settings)
    await admin.start()
    try:
        assert topics.client_replies("gone") not in await admin.list_topics()
    finally:
        await admin.close()

    # No handler saw a message much more often than it was published.
    for service, spec in SUBSCRIBED:
        published = await records_on(kafka_settings, topics(spec))
        seen = consumed(service, spec) - before[(service, spec)]
        assert seen <= MAX_DELIVERIES * published, (service, spec.name, seen, published)
    (indexed,) = await reader.read(RULES_INDEXED, count=1, where=lambda r: b"ok-0" in r.value)
    assert indexed.value
    for running in (ingest, retrieval, generation, grading):
        assert await running.is_ready(), running.name


SUBSCRIBED = (
    ("ingest", RULES_EVENTS),
    ("retrieval", CHAT_REQUESTS),
    ("generation", CHAT_GROUNDED),
    ("grading", EXAM_JOBS),
    ("grading", EXAM_ANSWERS),
    ("grading", RESEARCH_JOBS),
)
