"""The pipeline signing key on the real broker: with it set, only the pipeline's own producers
speak for a tenant. A chat request published without the key (naming another tenant) is
dead-lettered before retrieval grounds it in that tenant's rules; a reply forged onto a
gateway's reply topic is dead-lettered before it reaches a waiting client, and one forged onto
the responses topic is skipped by the client; the pipeline's own
traffic (the gateway, the client with the key) is answered as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from pydantic import SecretStr

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.settings import KafkaSettings
from shared.signing import RecordSigner
from shared.tenants import ApiKeys
from shared.testing.topics import TopicReader
from shared.topic_tail import TopicTail, collect_replies
from shared.topics import CHAT_REQUESTS, CHAT_RESPONSES
from tests.integration.gateway_stack import EchoBackend, gateway_opener

KEY = SecretStr("pipeline-test-key")


@pytest.fixture
def signed(service_settings: dict[str, Any]) -> dict[str, Any]:
    kafka: KafkaSettings = service_settings["kafka"]
    return {**service_settings, "kafka": kafka.model_copy(update={"pipeline_signing_key": KEY})}


@pytest.fixture
async def signed_pipeline(
    signed: dict[str, Any], prefix: str, use_embedder: UniversalSentenceEncoder
) -> AsyncIterator[None]:
    retrieval = RetrievalService(RetrievalSettings(**signed, group_id=f"{prefix}.retrieval"),
                                 embedder=use_embedder)  # fmt: skip
    generation = GenerationService(GenerationSettings(**signed, group_id=f"{prefix}.generation",
                                                      request_timeout_s=5.0),
                                   backend=EchoBackend())  # fmt: skip
    async with retrieval, generation:
        yield


def question(text: str, tenant: str = "victim") -> events.ChatRequest:
    message = events.ChatMessage(role=events.Role.USER, content=text)
    return events.ChatRequest(tenant=tenant, messages=(message,), strategy=events.Strategy.BASE)


async def test_requests_and_replies_without_the_pipeline_key_are_dead_lettered(
    signed_pipeline: None,
    signed: dict[str, Any],
    prefix: str,
    use_embedder: UniversalSentenceEncoder,
    keys: ApiKeys,
    client_broker: KafkaBroker,
    reader: TopicReader,
) -> None:
    kafka: KafkaSettings = signed["kafka"]
    topic = kafka.topics(CHAT_REQUESTS)
    unsigned = question("whose rules are these?")
    await client_broker.publish(events.encode(unsigned), topic, key=unsigned.key.encode())
    forged = question("and these?")
    value, key = events.encode(forged), forged.key.encode()
    guessed = RecordSigner(SecretStr("guess")).headers(topic, key, value)
    await client_broker.publish(value, topic, key=key,
                                headers={n: v.decode() for n, v in guessed})  # fmt: skip
    letters = [events.DeadLetter.model_validate_json(r.value)
               for r in await reader.read(CHAT_REQUESTS, dlq=True, count=2)]  # fmt: skip
    assert sorted(letter.reason for letter in letters) == ["bad_signature", "unsigned"]

    # The pipeline's own producers are answered: a client holding the key ...
    genuine = question("signed question", tenant="acme")
    async with (
        AlignstreamClient(kafka) as client,
        TopicTail(kafka, kafka.topics(CHAT_RESPONSES)) as tail,
    ):
        # A spoofed answer, published before the genuine one, is skipped by the client.
        spoofed = events.ChatResponse(request_id=genuine.request_id, tenant="acme", text="spoof")
        await client_broker.publish(events.encode(spoofed), tail.topic, key=b"acme:x")
        await client.send(CHAT_REQUESTS, genuine)
        await client.flush()
        replies = await collect_replies(tail, [("acme", genuine.request_id)], timeout_s=30)
    assert replies[genuine.request_id].ok
    assert replies[genuine.request_id].text != "spoof"
    assert tail.rejected == 1
    # ... and the gateway, which also drops a reply forged onto its reply topic.
    user, _ = await keys.create("acme")
    async with gateway_opener(signed, prefix, use_embedder)() as gateway:
        spoof = events.ChatResponse(request_id="r-1", tenant="acme", text="spoofed")
        await client_broker.publish(events.encode(spoof), gateway.reply_topic, key=b"acme:r-1")
        (record,) = await reader.read(CHAT_RESPONSES, dlq=True, count=1)
        assert events.DeadLetter.model_validate_json(record.value).reason == "unsigned"
        body = {"model": "alignstream:base", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {user}"}
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            answer = await http.post("/chat/completions", headers=headers, json=body)
        assert answer.status_code == 200, answer.text
