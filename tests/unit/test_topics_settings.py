"""Topic registry and environment settings."""

from __future__ import annotations

import pytest

from services.ingest.settings import IngestSettings
from shared import events, topics
from shared.kafka import broker_security, consumer_options
from shared.settings import KafkaSettings, RedisSettings
from shared.topics import TopicNames


def test_rule_topic_is_compacted_and_keyed_by_rule() -> None:
    assert topics.RULES_EVENTS.configs == {"cleanup.policy": "compact"}
    assert topics.RULES_EVENTS.key == "tenant:rule_id"


def test_every_topic_has_a_dead_letter_topic() -> None:
    names = [spec.name for spec in topics.all_topics()]
    assert len(names) == len(set(names)) == 2 * len(topics.TOPICS)
    for spec in topics.TOPICS:
        assert spec.dead_letter().name == spec.name + ".dlq"
        assert spec.dead_letter().value is events.DeadLetter


def test_prefix_applies_to_topics_and_dlqs() -> None:
    names = topics.TopicNames("staging.")
    assert names(topics.CHAT_REQUESTS) == "staging.chat.requests"
    assert names.dlq(topics.CHAT_REQUESTS) == "staging.chat.requests.dlq"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("REDIS_URL", "redis://:secret@redis:6379/1")
    monkeypatch.setenv("ALIGNSTREAM_KAFKA_FETCH_MAX_WAIT_MS", "25")
    monkeypatch.setenv("ALIGNSTREAM_INGEST_BATCH_MAX", "17")
    monkeypatch.setenv("ALIGNSTREAM_EMBEDDER_BACKEND", "openai")
    settings = IngestSettings()
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.kafka.fetch_max_wait_ms == 25
    assert settings.batch_max == 17
    assert settings.embedder.backend == "openai"
    assert settings.redis.url.get_secret_value() == "redis://:secret@redis:6379/1"
    assert "secret" not in repr(settings)


def test_explicit_values_win_over_defaults() -> None:
    assert KafkaSettings(bootstrap="x:1").bootstrap == "x:1"
    assert RedisSettings(url="redis://y:2").url.get_secret_value() == "redis://y:2"


def test_consumer_options_carry_the_timeouts() -> None:
    options = consumer_options(
        KafkaSettings(session_timeout_ms=1000, heartbeat_interval_ms=200), group_id="g",
        topic="chat.requests",
    )  # fmt: skip
    assert options["group_id"] == "g"
    assert options["session_timeout_ms"] == 1000
    assert options["heartbeat_interval_ms"] == 200
    assert options["auto_offset_reset"] == "earliest"
    assert options["group_instance_id"] is None  # dynamic membership unless named


def test_a_named_instance_joins_each_group_statically_once_per_topic() -> None:
    settings = KafkaSettings(group_instance="generation-7f9c")
    ids = {consumer_options(settings, group_id="g", topic=t)["group_instance_id"]
           for t in ("chat.grounded", "chat.cancels")}  # fmt: skip
    assert ids == {"generation-7f9c.chat.grounded", "generation-7f9c.chat.cancels"}
    with pytest.raises(ValueError, match="group_instance"):
        KafkaSettings(group_instance="bad name")


def test_security_mapping() -> None:
    assert broker_security(KafkaSettings()) is None
    sasl = broker_security(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="u",
            sasl_password="p",
        )
    )
    assert type(sasl).__name__ == "SASLScram512"
    assert sasl is not None
    assert sasl.use_ssl
    with pytest.raises(ValueError, match="SASL needs"):
        broker_security(KafkaSettings(security_protocol="SASL_PLAINTEXT"))


def test_only_reply_topics_of_this_deployment_may_receive_replies() -> None:
    topics = TopicNames("prod.")
    allowed = ["prod.chat.responses", "prod.exam.answers", "prod.replies.gateway-1",
               topics.client_replies("a_b.c")]  # fmt: skip
    refused = ["prod.rules.events", "prod.chat.requests", "chat.responses", "prod.replies.",
               "prod.replies.x.dlq", "prod.replies.bad name", "prod.replies." + "x" * 250,
               "staging.replies.x", "prod.exam.answers.dlq", ""]  # fmt: skip
    assert [t for t in allowed if topics.reply_allowed(t)] == allowed
    assert [t for t in refused if topics.reply_allowed(t)] == []


def test_final_publish_errors_are_not_retried() -> None:
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        MessageSizeTooLargeError,
        UnknownTopicOrPartitionError,
    )

    from shared.kafka import OversizedMessage, is_final_publish_error

    assert is_final_publish_error(OversizedMessage(10, 5))
    assert is_final_publish_error(MessageSizeTooLargeError())
    assert not is_final_publish_error(KafkaConnectionError())  # an outage: retry
    assert not is_final_publish_error(KafkaTimeoutError())
    # A missing topic is final only where the service does not create the topic itself.
    assert not is_final_publish_error(UnknownTopicOrPartitionError())
    assert is_final_publish_error(UnknownTopicOrPartitionError(), topic_is_ours=False)


def test_a_redis_password_apart_from_the_url_reaches_every_client() -> None:
    """The chart keeps the password out of the URL's Secret: both kinds of client use it, and a
    password written in the URL still wins."""
    from shared.redis import make_redis
    from shared.tenants import ApiKeys

    apart = RedisSettings(url="redis://redis:6379/0", password="s3cret")
    assert make_redis(apart).connection_pool.connection_kwargs["password"] == "s3cret"
    assert ApiKeys.from_settings(apart).redis.connection_pool.connection_kwargs["password"] == (
        "s3cret"
    )
    in_url = RedisSettings(url="redis://:inline@redis:6379/0", password="s3cret")
    assert make_redis(in_url).connection_pool.connection_kwargs["password"] == "inline"
    assert "password" not in make_redis(RedisSettings()).connection_pool.connection_kwargs
    assert "s3cret" not in repr(apart)
