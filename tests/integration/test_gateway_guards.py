"""The gateway's guards, each on its own against the real Redis and broker: the admin right on
every route of the rules API, the verified-key cache (revocation within ``key_cache_s``, bad
keys cached too), and the rate limiter's token bucket arithmetic."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from services.gateway.ratelimit import RateLimiter
from shared.tenants import ApiKey, ApiKeys
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS
from tests.integration.gateway_stack import OpenGateway


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_every_rules_route_but_the_check_needs_an_admin_key(
    open_gateway: OpenGateway, keys: ApiKeys, reader: TopicReader
) -> None:
    user, _ = await keys.create("acme")
    rule = {"text": "Refunds within 30 days."}
    async with (
        open_gateway() as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, headers=auth(user), timeout=30) as http,
    ):
        for method, path, body in (
            ("GET", "/rules", None),
            ("GET", "/rules/refunds", None),
            ("PUT", "/rules/refunds", rule),
            ("DELETE", "/rules/refunds", None),
            ("DELETE", "/rules/refunds?version=3", None),
        ):
            response = await http.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"
        check = await http.post("/rules/applicable", json={"text": "Can I get a refund?"})
        assert check.status_code == 200, check.text
    with pytest.raises(AssertionError):  # nothing reached the rule log
        await reader.read(RULES_EVENTS, count=1, timeout_s=2)


async def test_verified_keys_are_cached_for_key_cache_s_and_bad_keys_too(
    open_gateway: OpenGateway, keys: ApiKeys
) -> None:
    user, record = await keys.create("acme")
    async with (
        open_gateway(key_cache_s=1.5) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http,
    ):
        assert (await http.get("/models", headers=auth(user))).status_code == 200
        await keys.revoke(record.key_id)
        # Within the cache time the verified key is reused ...
        assert (await http.get("/models", headers=auth(user))).status_code == 200
        await asyncio.sleep(1.6)
        # ... after it, Redis is asked again and the revocation holds.
        assert (await http.get("/models", headers=auth(user))).status_code == 401
        # A refusal is cached as well: a flood of one bad key asks Redis once per cache time.
        verify, asked = gateway.keys.verify, []

        async def counted(token: str) -> ApiKey | None:
            asked.append(token)
            return await verify(token)

        gateway.keys.verify = counted  # type: ignore[method-assign,assignment]
        unknown = "ask_0123456789ab_" + "x" * 43
        for _ in range(20):
            assert (await http.get("/models", headers=auth(unknown))).status_code == 401
        assert asked == [unknown]


async def test_the_token_bucket_admits_its_burst_then_one_per_interval(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    limiter = RateLimiter(redis_client, prefix)
    waits = [await limiter.acquire("k1", 2.0) for _ in range(3)]
    assert waits[:2] == [0.0, 0.0]  # a second's worth of burst: two tokens
    assert 0.4 <= waits[2] <= 0.5  # the third waits for half a second's refill
    # Another key has a bucket of its own.
    assert await limiter.acquire("k2", 2.0) == 0.0
    await asyncio.sleep(0.55)
    assert await limiter.acquire("k1", 2.0) == 0.0  # refilled one token
    assert await limiter.acquire("k1", 2.0) > 0.0
    # The bucket expires once it would be full again: no key outlives its use.
    ttl_ms = await redis_client.pttl(f"{prefix}:ratelimit:k1")
    assert 0 < ttl_ms <= 2000
