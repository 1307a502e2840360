"""New topics get the broker's replication: on the local single broker (which reports no
default.replication.factor) one copy per broker it has, here 1; a setting wins."""

from __future__ import annotations

from shared.kafka import admin_client
from shared.settings import KafkaSettings
from shared.topic_replication import replication_factor
from shared.topics import CHAT_REQUESTS


async def test_unset_replication_follows_the_cluster_and_a_setting_wins(
    kafka_settings: KafkaSettings,
) -> None:
    admin = admin_client(kafka_settings)
    await admin.start()
    try:
        assert kafka_settings.replication_factor is None
        assert await replication_factor(admin, kafka_settings) == 1  # one broker, no default
        chosen = kafka_settings.model_copy(update={"replication_factor": 3})
        assert await replication_factor(admin, chosen) == 3
        topics = await admin.describe_topics([kafka_settings.topics(CHAT_REQUESTS)])
        (partition, *_) = topics[0]["partitions"]
        assert len(partition["replicas"]) == 1  # created by the fixture with the cluster's
    finally:
        await admin.close()
