"""API keys in the real Redis (redis-om): shown once, stored hashed, scoped to their tenant,
revocable, and every presented key treated as hostile."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from shared.errors import Hinted
from shared.settings import RedisSettings
from shared.tenants import ApiKeys
from tests.integration.helpers import alignstream_cli


async def test_a_key_verifies_as_its_tenant_until_revoked(
    keys: ApiKeys, redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    await keys.open()  # opening again is harmless (the index exists)
    secret, created = await keys.create(
        "acme-eu", admin=True, label="ci", default_scope=["EU", "EU/DE"], rate_limit_per_s=2.5
    )
    verified = await keys.verify(secret)
    assert verified == created
    assert verified is not None
    assert (verified.tenant, verified.admin) == ("acme-eu", True)
    assert verified.default_scope == ("EU", "EU/DE")
    assert verified.rate_limit_per_s == 2.5
    # Only the hash is stored: the secret is nowhere in Redis.
    stored = [await redis_client.hgetall(k)
              async for k in redis_client.scan_iter(match=f"{redis_settings.key_prefix}:*")
              if (await redis_client.type(k)) == b"hash"]  # fmt: skip
    assert stored
    hidden = secret.split("_")[-1].encode()
    assert all(hidden not in value for record in stored for value in record.values())

    revoked = await keys.revoke(created.key_id)
    assert revoked.revoked
    assert await keys.verify(secret) is None
    assert (await keys.revoke(created.key_id)).revoked_at == revoked.revoked_at  # idempotent
    assert [k.key_id for k in await keys.of_tenant("acme-eu")] == [created.key_id]  # still listed


async def test_keys_are_listed_and_revoked_per_tenant(keys: ApiKeys) -> None:
    _, acme = await keys.create("acme")
    _, beta = await keys.create("beta")
    assert [k.key_id for k in await keys.of_tenant("acme")] == [acme.key_id]
    assert {k.key_id for k in await keys.of_tenant()} == {acme.key_id, beta.key_id}
    with pytest.raises(Hinted, match="no API key"):
        await keys.revoke(beta.key_id, tenant="acme")  # another tenant's key
    assert not (await keys.of_tenant("beta"))[0].revoked


@pytest.mark.parametrize(
    "presented",
    ["", "Bearer", "ask_", "x" * 10_000, "ask_0123456789ab_" + "A" * 43, "ask_ZZZZ_" + "a" * 43,
     "ask_0123456789ab_" + "A" * 42 + "*", "ask_*_*", "\x00" * 60],
)  # fmt: skip
async def test_hostile_keys_never_verify(keys: ApiKeys, presented: str) -> None:
    await keys.create("acme")
    assert await keys.verify(presented) is None


async def test_a_forged_secret_for_a_real_key_id_is_refused(keys: ApiKeys) -> None:
    secret, key = await keys.create("acme")
    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert await keys.verify(forged) is None
    assert await keys.verify(secret) == key


@pytest.mark.parametrize(
    ("tenant", "scope", "rate"),
    [("acme:evil", (), None), ("", (), None), ("a" * 65, (), None), ("acme", ("a|b",), None),
     ("acme", ("",), None), ("acme", (), 0.0), ("acme", (), -1.0)],
)  # fmt: skip
async def test_bad_key_requests_are_refused(
    keys: ApiKeys, tenant: str, scope: tuple[str, ...], rate: float | None
) -> None:
    with pytest.raises(Hinted):
        await keys.create(tenant, default_scope=scope, rate_limit_per_s=rate)
    assert await keys.of_tenant() == []


async def test_the_cli_shows_a_key_once(
    cli_env: dict[str, str], redis_client: aioredis.Redis, keys: ApiKeys
) -> None:
    create = ("tenants", "create-key", "--tenant", "acme", "--admin", "--scope", "EU,EU/DE")
    code, out = await alignstream_cli(cli_env, *create, "--label", "ops")
    assert code == 0, out
    secret = next(w for w in out.split() if w.startswith("ask_"))
    key = await keys.verify(secret)
    assert key is not None
    assert key.admin
    assert key.default_scope == ("EU", "EU/DE")
    code, listed = await alignstream_cli(cli_env, "tenants", "keys", "--tenant", "acme")
    assert code == 0
    assert key.key_id in listed
    assert secret not in listed
    code, out = await alignstream_cli(cli_env, "tenants", "revoke", key.key_id)
    assert code == 0
    assert await keys.verify(secret) is None
    code, out = await alignstream_cli(cli_env, "tenants", "revoke", "000000000000")
    assert code == 1
    assert "no API key" in out
    assert "Traceback" not in out
