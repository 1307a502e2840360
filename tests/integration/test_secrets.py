"""Redis auth end to end, and secrets never logged: an ingest process with a password-protected
Redis, a rule-signing key and a SASL password in its environment indexes a signed rule, and none
of the secrets appears in its DEBUG log."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.exceptions import AuthenticationError, ResponseError

from shared import events
from shared.client import AlignstreamClient
from shared.devstack.servers import ValkeyServer
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings
from tests.integration.helpers import ServiceProcess
from tests.samples import sample_rule

REDIS_PASSWORD = "redis-pw-7f3a9c"
SIGNING_KEY = "signing-key-4b1e2d"
SASL_PASSWORD = "sasl-pw-9d8c7b"


@pytest.fixture
async def protected_redis(own_redis: ValkeyServer) -> ValkeyServer:
    client = make_redis(RedisSettings(url=own_redis.address))
    await client.config_set("requirepass", REDIS_PASSWORD)
    await client.aclose()
    return own_redis


@pytest.mark.timeout(180)
@pytest.mark.parametrize("password_in", ["url", "setting"])
async def test_password_redis_and_secrets_kept_out_of_logs(
    password_in: str,
    protected_redis: ValkeyServer,
    cli_env: dict[str, str],
    kafka_settings: KafkaSettings,
    prefix: str,
    tmp_path: Path,
) -> None:
    anonymous = make_redis(RedisSettings(url=protected_redis.address))
    with pytest.raises((AuthenticationError, ResponseError)):
        await anonymous.ping()
    await anonymous.aclose()

    # In the URL, or (as the chart gives it) a URL without one and the password on its own.
    url = protected_redis.address.replace("redis://", f"redis://:{REDIS_PASSWORD}@")
    redis_env = (
        {"REDIS_URL": url}
        if password_in == "url"
        else {"REDIS_URL": protected_redis.address, "ALIGNSTREAM_REDIS_PASSWORD": REDIS_PASSWORD}
    )
    env = {
        **cli_env,
        **redis_env,
        "ALIGNSTREAM_KAFKA_RULE_SIGNING_KEY": SIGNING_KEY,
        "ALIGNSTREAM_KAFKA_SASL_USERNAME": "svc",
        "ALIGNSTREAM_KAFKA_SASL_PASSWORD": SASL_PASSWORD,  # set, unused on a plaintext broker
        "ALIGNSTREAM_LOG_LEVEL": "DEBUG",
        "ALIGNSTREAM_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "ALIGNSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "200",
        "ALIGNSTREAM_INGEST_GROUP_ID": f"{prefix}.ingest",
    }
    log = tmp_path / "ingest.log"
    ingest = ServiceProcess("ingest", env, log)
    ingest.start()
    try:
        await ingest.ready()
        signed = kafka_settings.model_copy(update={"rule_signing_key": SecretStr(SIGNING_KEY)})
        async with AlignstreamClient(signed) as client:
            (confirmation,) = await client.publish_rules(
                [events.RuleUpsert(rule=sample_rule())], wait=True, timeout_s=60
            )
        assert confirmation.outcome is events.IndexOutcome.APPLIED
    finally:
        ingest.stop()
    text = log.read_text()
    assert "service started" in text
    for secret in (REDIS_PASSWORD, SIGNING_KEY, SASL_PASSWORD):
        assert secret not in text
