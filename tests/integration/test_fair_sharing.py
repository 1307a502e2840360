"""Fair sharing through the real stack: one tenant's load cannot starve another at the gateway
(open-request caps per tenant and key, a default rate limit), refused requests cost nothing
(key before body, bounded heads), and dropped or timed-out requests free their generation slot
(the engine's request is cancelled, not run to its end)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from shared import events
from shared.client import AlignstreamClient
from shared.events import MAX_RULE_VERSION
from shared.settings import KafkaSettings
from shared.tenants import ApiKeys
from shared.testing.backends import SlowStreamer
from shared.testing.topics import TopicReader
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS
from tests.integration.gateway_stack import OpenGateway

BASE = {"model": "alignstream:base"}


def ask(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {**BASE, "messages": [{"role": "user", "content": text}], **extra}


def gateway_key_id(key: str) -> str:
    return key.split("_")[1]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def streamer() -> SlowStreamer:
    return SlowStreamer(words=40, interval_s=0.25)


@pytest.fixture
async def generation(
    service_settings: dict[str, Any], prefix: str, streamer: SlowStreamer
) -> AsyncIterator[GenerationService]:
    settings = GenerationSettings(**service_settings, group_id=f"{prefix}.generation",
                                  request_timeout_s=30.0, stream_interval_s=0.02,
                                  max_in_flight=4, max_in_flight_per_tenant=3)  # fmt: skip
    async with GenerationService(settings, backend=streamer) as service:
        yield service


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_tenant_holding_its_share_leaves_room_for_another(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys, generation: GenerationService
) -> None:
    noisy_a, _ = await keys.create("noisy")
    noisy_b, _ = await keys.create("noisy")
    quiet, _ = await keys.create("quiet")
    limits = {"max_in_flight": 6, "max_in_flight_per_tenant": 3, "max_in_flight_per_key": 2,
              "request_timeout_s": 30.0}  # fmt: skip
    async with (
        open_gateway(**limits) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http,
    ):

        def post(key: str) -> asyncio.Task[httpx.Response]:
            return asyncio.create_task(http.post("/chat/completions", json=ask(),
                                                 headers=auth(key)))  # fmt: skip

        slow = [post(noisy_a), post(noisy_a)]
        await _until(lambda: gateway.chat.open.of_key(gateway_key_id(noisy_a)) == 2)
        # The key's cap (2) refuses the key's next request, the tenant's (3) the tenant's ...
        by_key = await http.post("/chat/completions", json=ask(), headers=auth(noisy_a))
        assert by_key.status_code == 429
        assert "API key" in by_key.json()["error"]["message"]
        slow.append(post(noisy_b))
        await _until(lambda: gateway.chat.open.of_tenant("noisy") == 3)
        by_tenant = await http.post("/chat/completions", json=ask(), headers=auth(noisy_b))
        assert by_tenant.status_code == 429
        assert "tenant" in by_tenant.json()["error"]["message"]
        # ... while the quiet tenant is answered, though the instance's bound (6) was shared.
        started = time.monotonic()
        answered = await http.post("/chat/completions", json=ask(), headers=auth(quiet))
        assert answered.status_code == 200, answered.text
        # Generation gave the quiet tenant a slot at once (its per-tenant cap of 3 of 4).
        assert time.monotonic() - started < 40 * 0.25 + 5
        assert all(r.status_code == 200 for r in await asyncio.gather(*slow))
        assert gateway.chat.open.total == 0


async def test_keys_without_a_rate_get_the_default_limit(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    plain, _ = await keys.create("acme")
    own, _ = await keys.create("acme", rate_limit_per_s=1000)
    async with (
        open_gateway(default_rate_limit_per_s=2.0) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http,
    ):
        statuses = [(await http.get("/models", headers=auth(plain))).status_code
                    for _ in range(6)]  # fmt: skip
        assert statuses[:2] == [200, 200]
        assert 429 in statuses
        own_statuses = [(await http.get("/models", headers=auth(own))).status_code
                        for _ in range(6)]  # fmt: skip
        assert own_statuses == [200] * 6


async def test_the_key_is_checked_before_the_body_is_read(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    user, _ = await keys.create("acme")
    async with open_gateway() as gateway:
        url = urlsplit(gateway.base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80

        def head_only(key: str, path: str = "/v1/chat/completions") -> bytes:
            """Send a request head announcing a 500 kB body, and none of the body."""
            with socket.create_connection((host, port), timeout=5) as conn:
                conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                             "Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n"
                             .encode())  # fmt: skip
                return conn.recv(4096)  # times out (5 s) when the gateway waits for the body

        for key, path, status in (
            ("ask_000000000000_" + "x" * 43, "/v1/chat/completions", b" 401 "),
            (user, "/v1/rules/some-rule", b" 403 "),  # not an admin key: no body either
        ):
            reply = await asyncio.to_thread(head_only, key, path)
            assert status in reply.split(b"\r\n")[0], reply[:200]


async def test_oversized_heads_are_refused_before_the_app(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    user, _ = await keys.create("acme")
    async with (
        open_gateway(max_header_bytes=16 * 1024, max_headers=40) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http,
    ):
        many = {f"x-h{i}": "1" for i in range(60)}
        big = {"x-big": "b" * 40_000}
        for extra in (many, big):
            with contextlib.suppress(httpx.RemoteProtocolError, httpx.WriteError):
                response = await http.get("/models", headers={**auth(user), **extra})
                assert response.status_code == 431
                assert response.json()["error"]["code"] == "headers_too_large"
        fine = await http.get("/models", headers={**auth(user), **dict(list(many.items())[:20])})
        assert fine.status_code == 200
        # A body larger than the head cap, arriving with its head in one piece, is no head.
        for _ in range(3):  # on one kept-alive connection
            check = await http.post("/rules/applicable", headers=auth(user),
                                    json={"text": "Can I return it? " * 4000})  # fmt: skip
            assert check.status_code == 200, check.text


async def test_a_dropped_stream_and_a_timed_out_request_free_their_generation_slots(
    open_gateway: OpenGateway,
    pipeline: None,
    keys: ApiKeys,
    generation: GenerationService,
    streamer: SlowStreamer,
) -> None:
    user, _ = await keys.create("acme", rate_limit_per_s=1000)
    async with (
        open_gateway(request_timeout_s=1.5) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, headers=auth(user), timeout=30) as http,
    ):
        for _ in range(3):  # the tenant's whole share of generation (3 of 4 slots)
            async with http.stream("POST", "/chat/completions", json=ask(stream=True)) as reply:
                assert reply.status_code == 200
                async for line in reply.aiter_lines():
                    if line.startswith("data:"):
                        break  # the client leaves after the first piece
        # Each answer would take 10 s; the cancels end them now.
        await _until(lambda: streamer.cancelled == 3, timeout_s=5)
        await _until(lambda: generation.slots.in_use == 0, timeout_s=5)
        assert streamer.finished == 0

        late = await http.post("/chat/completions", json=ask())
        assert late.status_code == 504
        await _until(lambda: streamer.cancelled == 4, timeout_s=5)
        await _until(lambda: generation.slots.in_use == 0, timeout_s=5)
        assert streamer.finished == 0
        assert streamer.running == 0


async def test_rule_versions_are_bounded_to_exact_doubles(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    admin, _ = await keys.create("acme", admin=True)
    async with (
        open_gateway() as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, headers=auth(admin), timeout=30) as http,
    ):
        rule = {"text": "Refunds within 30 days.", "version": MAX_RULE_VERSION + 1}
        too_big = await http.put("/rules/refunds", json=rule)
        assert too_big.status_code == 400
        assert too_big.json()["error"]["param"] == "version"
        deleted = await http.delete("/rules/refunds", params={"version": 2**62})
        assert deleted.status_code == 400
        fine = await http.put("/rules/refunds", json={**rule, "version": MAX_RULE_VERSION},
                              params={"wait": "true"})  # fmt: skip
        assert fine.status_code == 200, fine.text
        # The memory holds the largest version: no next one can be made, and that is an error.
        again = await http.put("/rules/refunds", json={"text": "Refunds within 14 days."})
        assert again.status_code == 400


async def test_a_missing_reply_topic_is_dead_lettered_before_it_takes_a_slot(
    pipeline: None,
    generation: GenerationService,
    streamer: SlowStreamer,
    kafka_settings: KafkaSettings,
    reader: TopicReader,
) -> None:
    missing = kafka_settings.topics.client_replies("never-made")
    question = events.ChatMessage(role=events.Role.USER, content="hello")
    request = events.ChatRequest(tenant="acme", messages=(question,), reply_topic=missing,
                                 strategy=events.Strategy.BASE)  # fmt: skip
    started = time.monotonic()
    async with AlignstreamClient(kafka_settings) as client:
        await client.send(CHAT_REQUESTS, request)
        await client.flush()
    (record,) = await reader.read(CHAT_GROUNDED, dlq=True, count=1, timeout_s=30)
    letter = events.DeadLetter.model_validate_json(record.value)
    assert letter.reason == "unpublishable_reply"
    assert time.monotonic() - started < 15  # the producer's metadata wait alone was 40 s
    assert streamer.started == 0  # no slot, no generation
    assert generation.slots.in_use == 0
