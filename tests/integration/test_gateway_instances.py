"""Gateway instances come and go: the reply topic of one that died without deleting it (a kill,
a lost node) is deleted by the live ones; nothing else is touched."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from services.gateway.reply_janitor import ReplyTopicJanitor
from shared.kafka import admin_client, ensure_topics
from shared.memory.keys import RuleKeys
from shared.settings import KafkaSettings, RedisSettings
from shared.topics import client_replies_spec
from tests.integration.gateway_stack import OpenGateway


async def topics(kafka: KafkaSettings) -> set[str]:
    admin = admin_client(kafka)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def never_deleted(topics: list[str]) -> None:
    raise AssertionError("the dead instance deletes nothing")


async def test_the_reply_topic_of_a_gateway_that_died_is_deleted_by_the_live_ones(
    open_gateway: OpenGateway,
    kafka_settings: KafkaSettings,
    redis_settings: RedisSettings,
    redis_client: Redis,
) -> None:
    keys = RuleKeys(redis_settings.key_prefix)
    dead_spec, client_spec = client_replies_spec("gw-dead"), client_replies_spec("client-own")
    dead_topic, client_topic = kafka_settings.topics(dead_spec), kafka_settings.topics(client_spec)
    # What a killed gateway leaves: its topic, registered, with a lease nobody renews.
    dead = ReplyTopicJanitor(redis_client, keys, dead_topic, never_deleted, lease_s=0.2)
    await dead.register()
    await ensure_topics(kafka_settings, [dead_spec, client_spec])  # and a client's own topic
    await asyncio.sleep(0.3)
    async with open_gateway() as live:  # its first sweep runs as it starts serving
        deadline = time.monotonic() + 15
        while dead_topic in await topics(kafka_settings) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        present = await topics(kafka_settings)
        assert dead_topic not in present
        assert {client_topic, live.reply_topic} <= present  # unregistered / alive: kept
        registered = await redis_client.smembers(keys.reply_topics_key)
        assert registered == {live.reply_topic.encode()}
    # A clean shutdown deletes its own topic and its registration.
    assert live.reply_topic not in await topics(kafka_settings)
    assert await redis_client.smembers(keys.reply_topics_key) == set()
