"""One chat request is one trace: the gateway's HTTP span, retrieval's span (the scope
searched, the rule versions) and generation's (queue wait, time to first token), linked parent
to child through the Kafka headers of batch consumers, exported over real OTLP/HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared.embedders.use import UniversalSentenceEncoder
from shared.settings import ObservabilitySettings
from shared.tenants import ApiKeys
from shared.testing.otlp import OtlpReceiver
from tests.integration.gateway_stack import EchoBackend, gateway_opener

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as server:
        yield server


async def test_a_chat_request_is_one_trace_across_gateway_retrieval_and_generation(
    service_settings: dict[str, Any],
    prefix: str,
    use_embedder: UniversalSentenceEncoder,
    ingest: IngestService,
    receiver: OtlpReceiver,
    keys: ApiKeys,
) -> None:
    traced = {**service_settings, "observability": ObservabilitySettings(
        http_host="127.0.0.1", http_port=0, otlp_endpoint=receiver.endpoint)}  # fmt: skip
    admin, _ = await keys.create("acme", admin=True)
    open_gateway = gateway_opener(traced, prefix, use_embedder)
    retrieval = RetrievalService(RetrievalSettings(**traced, group_id=f"{prefix}.retrieval"),
                                 embedder=use_embedder)  # fmt: skip
    generation = GenerationService(GenerationSettings(**traced, group_id=f"{prefix}.generation"),
                                   backend=EchoBackend())  # fmt: skip
    headers = {"Authorization": f"Bearer {admin}"}
    async with (
        retrieval,
        generation,
        open_gateway() as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers=headers) as http,
    ):
        rule = {"text": "Refunds within 30 days with a receipt.", "title": "Refunds"}
        put = await http.put("/rules/refunds", params={"wait": "true"}, json=rule)
        assert put.status_code == 200, put.text
        answer = await http.post(
            "/chat/completions",
            json={"model": "alignstream", "messages": [{"role": "user",
                                                        "content": "Refund after 20 days?"}]},
            # The caller's own trace continues through the pipeline.
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
    # Stopped: every service has exported what it buffered.
    spans = receiver.of_trace(TRACE_ID)
    by_service: dict[str, list[Any]] = {}
    for span in spans:
        by_service.setdefault(span.service, []).append(span)
    assert {"alignstream-gateway", "alignstream-retrieval", "alignstream-generation"} <= set(
        by_service
    ), spans
    (ground,) = [s for s in spans if s.name == "retrieval.ground"]
    (generate,) = [s for s in spans if s.name == "generation.generate"]
    gateway_ids = {s.span_id for s in by_service["alignstream-gateway"]}
    assert ground.parent_id in gateway_ids  # the HTTP request's span
    assert generate.parent_id == ground.span_id
    assert ground.attributes["alignstream.rules"] == ["refunds@1"]
    assert ground.attributes["alignstream.scope.source"] == "global"
    assert generate.attributes["alignstream.grounded_in"] == ["refunds@1"]
    assert "alignstream.queue_wait_ms" in generate.attributes
    assert generate.attributes["alignstream.ttft_ms"] == 1.0
    # Requests of other traces stay in theirs.
    assert all(
        s.trace_id != TRACE_ID for s in receiver.spans if s.name == "PUT /v1/rules/{rule_id}"
    )
