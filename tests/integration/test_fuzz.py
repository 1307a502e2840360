"""1,000 hostile messages to every consumed topic while valid traffic flows through all four
services: each lands in its dead-letter topic with the right reason, no service stops, and every
valid rule and question in between is still served."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from shared.testing.backends import ScriptedBackend
from shared.testing.topics import TopicReader
from shared.topic_tail import TopicTail, collect_responses
from shared.topics import CHAT_REQUESTS, CHAT_RESPONSES, RULES_EVENTS, RULES_INDEXED
from tests.fuzz import CONSUMED, bad_messages, draw_examples
from tests.samples import sample_rule

PER_TOPIC = 200  # x 6 consumed topics = 1,200 messages
VALID_EVERY = 20  # a valid rule and a valid question after every 20 bad messages


class EchoBackend(ScriptedBackend):
    async def generate(self, request: GenerationInput) -> GenerationOutput:
        return GenerationOutput(
            text="echo: " + request.messages[-1]["content"], finish_reason="stop"
        )


@pytest.fixture
async def generation(
    service_settings: dict[str, Any], prefix: str
) -> AsyncIterator[GenerationService]:
    settings = GenerationSettings(**service_settings, group_id=f"{prefix}.generation")
    async with GenerationService(settings, backend=EchoBackend()) as service:
        yield service


@pytest.mark.timeout(240)
async def test_hostile_messages_on_every_topic_are_dead_lettered_and_valid_traffic_flows(
    ingest: IngestService,
    retrieval: RetrievalService,
    generation: GenerationService,
    grading: GradingService,
    client_broker: KafkaBroker,
    kafka_settings: KafkaSettings,
    reader: TopicReader,
) -> None:
    max_bytes = ingest.settings.max_message_bytes
    bad = {c: draw_examples(bad_messages(c, max_bytes=max_bytes), PER_TOPIC) for c in CONSUMED}
    assert sum(map(len, bad.values())) == PER_TOPIC * len(CONSUMED)

    rules: list[events.Rule] = []
    questions: list[events.ChatRequest] = []
    started = time.perf_counter()
    async with (
        AlignstreamClient(kafka_settings) as client,
        TopicTail(kafka_settings, reader.name(CHAT_RESPONSES)) as responses,
    ):
        for i in range(PER_TOPIC):
            for consumed, messages in bad.items():
                await client_broker.publish(messages[i][0], reader.name(consumed.topic),
                                            key=b"fuzz-%d" % i, no_confirm=True)  # fmt: skip
            if i % VALID_EVERY == 0:
                rule = sample_rule(rule_id=f"fuzz-{i}", text=f"Valid rule number {i}.")
                rules.append(rule)
                upsert = events.RuleUpsert(rule=rule)
                await client.send(RULES_EVENTS, upsert)
                question = events.ChatRequest(
                    tenant="acme",
                    messages=(events.ChatMessage(role=events.Role.USER, content=f"valid {i}?"),),
                )
                questions.append(question)
                await client.send(CHAT_REQUESTS, question)
        await client.flush()
        replies = await collect_responses(
            responses, [q.request_id for q in questions], tenant="acme", timeout_s=120
        )
    assert all(reply.ok for reply in replies.values())

    for consumed, messages in bad.items():
        letters = [
            events.DeadLetter.model_validate_json(record.value)
            for record in await reader.read(
                consumed.topic, dlq=True, count=len(messages), timeout_s=120
            )
        ]
        assert {letter.service for letter in letters} == {consumed.service}
        got = Counter((letter.original_sha256, letter.reason) for letter in letters)
        # A message whose reason is open (None) must still be dead-lettered, with any reason.
        expected = Counter(
            (_sha(payload), reason if reason is not None else _reason_of(letters, payload))
            for payload, reason in messages
        )
        assert got == expected, consumed.topic.name
    indexed = await reader.read(RULES_INDEXED, count=len(rules), timeout_s=60)
    assert {events.RuleIndexed.model_validate_json(r.value).rule_id for r in indexed} == {
        rule.rule_id for rule in rules
    }
    for service in (ingest, retrieval, generation, grading):
        assert await service.is_ready(), service.name
    elapsed = time.perf_counter() - started
    print(f"\n{PER_TOPIC * len(CONSUMED):,} hostile messages + {len(rules)} rules + "
          f"{len(questions)} questions handled in {elapsed:.1f} s")  # fmt: skip


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _reason_of(letters: list[events.DeadLetter], payload: bytes) -> str:
    return next(letter.reason for letter in letters if letter.original_sha256 == _sha(payload))
