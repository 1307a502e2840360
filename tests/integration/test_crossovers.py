"""Tenant crossovers on every surface, tried as the other tenant would, on the real broker and
Redis: prompt sets, exam answers, client reply matching; and labels in any script are found the
way they were written (escaping and normalization on the real RediSearch)."""

from __future__ import annotations

import asyncio

import numpy as np
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from services.grading.app import GradingService
from services.grading.asking import request_id_for
from services.grading.records import item_of, scoped_id
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.memory.schema import RuleSchema
from shared.prompt_sets import SHARED, PromptSet, PromptSetStore
from shared.settings import KafkaSettings, RedisSettings
from shared.testing.topics import TopicReader
from shared.topic_tail import TopicTail, collect_replies
from shared.topics import CHAT_RESPONSES, EXAM_ANSWERS, EXAM_JOBS
from tests.integration.test_retrieval import question, write_rules
from tests.samples import sample_rule


def drpo(tenant: str, prompt_set: str) -> events.ChatRequest:
    return events.ChatRequest(
        tenant=tenant,
        strategy=events.Strategy.DRPO,
        prompt_set=prompt_set,
        messages=(events.ChatMessage(role=events.Role.USER, content="Hello?"),),
    )


async def test_a_tenant_never_gets_another_tenants_prompt_set(
    retrieval: RetrievalService,
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    store = PromptSetStore(redis_client, redis_settings.key_prefix)
    empty = np.zeros((0, use_embedder.dim), dtype=np.float32)

    async def put(owner: str, name: str, system: str) -> None:
        await store.put(PromptSet(name=name, system=system), empty, use_embedder.name, owner=owner)

    await put("alpha", "private", "alpha's secret prompt")
    await put(SHARED, "default", "the shared prompt")
    await put("alpha", "default", "alpha's own default")
    requests = {
        "beta-private": drpo("beta", "private"),
        "alpha-private": drpo("alpha", "private"),
        "beta-default": drpo("beta", "default"),
        "alpha-default": drpo("alpha", "default"),
    }
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        grounded = await client.ground(requests.values())
    system = {name: grounded[r.request_id].system_prompt for name, r in requests.items()}
    assert system == {
        "beta-private": None,  # alpha's set does not exist for beta
        "alpha-private": "alpha's secret prompt",
        "beta-default": "the shared prompt",
        "alpha-default": "alpha's own default",  # a tenant's set wins over the shared one
    }


async def test_exam_answers_count_only_from_the_jobs_tenant_request_and_pending_item(
    grading: GradingService,
    client_broker: KafkaBroker,
    reader: TopicReader,
    kafka_settings: KafkaSettings,
) -> None:
    job = events.ExamJob(tenant="acme", dataset="exam_en.jsonl",
                         strategies=(events.Strategy.BASE,))  # fmt: skip
    async with AlignstreamClient(kafka_settings) as client:
        await client.send(EXAM_JOBS, job)  # no generation runs: items stay pending
        await client.flush()
    sid = scoped_id("acme", job.job_id)
    store = grading._store()
    async with asyncio.timeout(20):
        while (await store.counts(sid))[1] == 0:  # noqa: ASYNC110 (polls Redis)
            await asyncio.sleep(0.05)
    item = item_of(events.Strategy.BASE, "refund-1")
    metadata = {"exam_job": job.job_id, "exam_item": str(item)}
    record = await store.record_of(sid)
    assert record is not None
    assert len(record.nonce) == 32
    genuine_id = request_id_for(record.nonce, "acme", job.job_id, item)
    public_id = request_id_for("", "acme", job.job_id, item)  # from public values alone
    forged = [
        # Another tenant naming acme's job: unknown under its own tenant.
        (events.ChatResponse(request_id=public_id, tenant="beta", text="A",
                             metadata=metadata), "unknown_exam_job"),
        # The right tenant, but not the request the item was asked under.
        (events.ChatResponse(request_id="guessed", tenant="acme", text="A", metadata=metadata),
         "wrong_request_id"),
        # The id a producer can work out from the job's public values: not the job's.
        (events.ChatResponse(request_id=public_id, tenant="acme", text="A", metadata=metadata),
         "wrong_request_id"),
        # An item that is not the job's.
        (events.ChatResponse(request_id=genuine_id, tenant="acme", text="A",
                             metadata={**metadata, "exam_item": "opo|refund-1"}),
         "unknown_exam_item"),
        (events.ChatResponse(request_id=genuine_id, tenant="acme", text="A",
                             metadata={**metadata, "exam_item": "none|no-such"}),
         "unknown_exam_item"),
    ]  # fmt: skip
    for response, _ in forged:
        await client_broker.publish(events.encode(response), reader.name(EXAM_ANSWERS), key=b"f")
    genuine = events.ChatResponse(request_id=genuine_id, tenant="acme", text="B",
                                  metadata=metadata)  # fmt: skip
    await client_broker.publish(events.encode(genuine), reader.name(EXAM_ANSWERS), key=b"g")

    letters = [events.DeadLetter.model_validate_json(r.value)
               for r in await reader.read(EXAM_ANSWERS, dlq=True, count=len(forged))]  # fmt: skip
    assert sorted(letter.reason for letter in letters) == sorted(r for _, r in forged)
    async with asyncio.timeout(20):
        while not await store.answers(sid):  # noqa: ASYNC110 (polls Redis)
            await asyncio.sleep(0.05)
    (answer,) = await store.answers(sid)
    # The genuine reply, graded once.
    assert (answer.question_id, answer.chosen) == ("refund-1", "B")


async def test_a_reply_is_matched_on_tenant_and_request_id(kafka_settings: KafkaSettings) -> None:
    async with (
        AlignstreamClient(kafka_settings) as client,
        TopicTail(kafka_settings, kafka_settings.topics(CHAT_RESPONSES)) as tail,
    ):
        forged = events.ChatResponse(request_id="r1", tenant="beta", text="forged")
        genuine = events.ChatResponse(request_id="r1", tenant="acme", text="genuine")
        await client.send(CHAT_RESPONSES, forged)
        await client._producer.send(tail.topic, b"not a response", key=b"x")
        await client.send(CHAT_RESPONSES, genuine)
        await client.flush()
        got = await collect_replies(tail, [("acme", "r1")], timeout_s=20)
    assert got["r1"].text == "genuine"


LABELS = ["Côte d’Ivoire", "São Paulo · BR", "内蒙古（自治区）", "ÎLE-DE-FRANCE"]
"""Regions whose names hold non-ASCII punctuation, full-width forms or capitals."""


async def test_labels_in_any_script_are_found_as_written_and_normalized(
    retrieval: RetrievalService,
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    schema = RuleSchema(redis_settings.key_prefix, use_embedder.dim, use_embedder.name)
    rules = [sample_rule(rule_id=f"r{i}", jurisdiction=label, text=f"Local rule {i}.")
             for i, label in enumerate(LABELS)]  # fmt: skip
    rules.append(sample_rule(rule_id="elsewhere", jurisdiction="Texas", text="Local rule 9."))
    await write_rules(redis_client, schema, use_embedder, rules)
    asked = {
        "Côte d’Ivoire": "r0",
        "são paulo · br": "r1",  # other case
        "内蒙古(自治区)": "r2",  # ASCII brackets for full-width ones
        "île-de-france": "r3",
    }
    requests = {name: question("acme", "Which local rule?", jurisdictions=[name], top_k=10)
                for name in asked}  # fmt: skip
    inferred = question("acme", "What applies in Île-de-France?", top_k=10)
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        grounded = await client.ground([*requests.values(), inferred])
    for name, rule_id in asked.items():
        found = {r.rule_id for r in grounded[requests[name].request_id].rules}
        assert found == {rule_id}, name  # its region only (no global rules here)
    assert {r.rule_id for r in grounded[inferred.request_id].rules} == {"r3"}
    # The rule shows its jurisdiction as it was written.
    (shown,) = grounded[requests["内蒙古(自治区)"].request_id].rules
    assert shown.jurisdiction == "内蒙古（自治区）"
