"""Kafka broker factory, consumer options and explicit topic creation."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from shared.errors import KafkaUnreachable
from shared.settings import KafkaSettings
from shared.topic_replication import replication_factor
from shared.topics import TopicNames, TopicSpec, all_topics

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


class OversizedMessage(Exception):
    """A message this service derived is larger than the configured limit: never published."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes > limit {limit}")
        self.size = size
        self.limit = limit


_FINAL_PUBLISH_ERRORS = (
    OversizedMessage,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)


def is_final_publish_error(exc: BaseException, *, topic_is_ours: bool = True) -> bool:
    """Whether a publish failure can never succeed on retry: too large, an invalid or forbidden
    topic, or (for a topic the service does not create itself, e.g. a client's reply topic) a
    topic that does not exist. A broker outage is not final."""
    if isinstance(exc, _FINAL_PUBLISH_ERRORS):
        return True
    return not topic_is_ours and isinstance(exc, UnknownTopicOrPartitionError)


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if "SSL" not in settings.security_protocol:
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream security object for the configured protocol (None: plaintext)."""
    context = _ssl_context(settings)
    if not settings.security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=context) if context else None
    if settings.sasl_username is None or settings.sasl_password is None:
        raise ValueError("SASL needs ALIGNSTREAM_KAFKA_SASL_USERNAME and _SASL_PASSWORD")
    user, password = settings.sasl_username, settings.sasl_password.get_secret_value()
    if settings.sasl_mechanism == "SCRAM-SHA-256":
        return SASLScram256(user, password, ssl_context=context)
    if settings.sasl_mechanism == "SCRAM-SHA-512":
        return SASLScram512(user, password, ssl_context=context)
    return SASLPlaintext(user, password, ssl_context=context)


def client_security_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """The same security for raw aiokafka clients (admin)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = _ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


PRODUCER_MAX_REQUEST_BYTES = 1_048_576
"""aiokafka's default request limit, the size Kafka brokers accept by default."""


class KafkaBrokerStartingTogether(KafkaBroker):
    """Starts its subscribers all at once. Each consumer waits in ``start`` until its group
    hands it partitions, and a group's first join takes half the session timeout on Tansu (5 s
    at 10 s, measured); FastStream starts subscribers one after another, so a service with
    three took 15 s longer than it needed to before it was ready."""

    async def start(self) -> None:
        await self.connect()
        starting = [asyncio.ensure_future(subscriber.start()) for subscriber in self.subscribers]
        try:
            await asyncio.gather(*starting)
        except BaseException:  # the first failure, as it is (the CLI names it); no strays
            for task in starting:
                task.cancel()
            raise
        for publisher in self.publishers:
            await publisher.start()
        self.running = True


def make_broker(
    settings: KafkaSettings,
    *,
    client_id: str,
    max_message_bytes: int = PRODUCER_MAX_REQUEST_BYTES,
    **kwargs: Any,
) -> KafkaBroker:
    """A FastStream KafkaBroker (starting its subscribers together) with the project's settings
    (security, timeouts). Services check every message they derive against
    ``max_message_bytes`` before publishing; the producer allows a record's overhead on top."""
    return KafkaBrokerStartingTogether(
        settings.bootstrap,
        client_id=client_id,
        request_timeout_ms=settings.request_timeout_ms,
        max_request_size=max_message_bytes + 1024,
        security=broker_security(settings),
        # Topics are created explicitly; an auto-created topic would get the broker's defaults.
        allow_auto_create_topics=False,
        graceful_timeout=15.0,
        **kwargs,
    )


async def undecoded(message: StreamMessage[Any]) -> Any:
    """Message decoder that leaves bodies as bytes: handlers decode through ``Inbox``, which
    dead-letters what it cannot read. FastStream's default JSON decoding runs before the handler
    and would raise on hostile bodies (deep nesting, huge integers), redelivering them forever."""
    return message.body


def consumer_options(
    settings: KafkaSettings, *, group_id: str, topic: str, chat_path: bool = False
) -> dict[str, Any]:
    """Subscriber keyword arguments shared by every service's consumers (``chat_path``: one of
    the hops every answer waits for; ``topic``: names the consumer's static membership)."""
    instance = f"{settings.group_instance}.{topic}" if settings.group_instance else None
    return {
        "decoder": undecoded,
        "group_id": group_id,
        "group_instance_id": instance,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.fetch_wait_ms(chat_path=chat_path),
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
    }


def admin_client(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client with the project's settings (security, timeouts); not started."""
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        request_timeout_ms=settings.request_timeout_ms,
        **client_security_kwargs(settings),
    )


async def ensure_topics(
    settings: KafkaSettings,
    specs: Iterable[TopicSpec] | None = None,
    *,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Existing topics are left as they are (an operator may have tuned them). Retries while the
    broker is still starting, up to ``timeout_s``.
    """
    names = TopicNames(settings.topic_prefix)
    wanted = list(specs if specs is not None else all_topics())
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = admin_client(settings)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [spec for spec in wanted if names(spec) not in existing]
            if missing:
                copies = await replication_factor(admin, settings)
                response = await admin.create_topics(
                    [
                        NewTopic(
                            names(spec),
                            settings.partitions_of(spec),
                            copies,
                            topic_configs=spec.configs,
                        )
                        for spec in missing
                    ]
                )
                for topic, code, message in response.topic_errors:
                    if code not in (0, TOPIC_ALREADY_EXISTS):
                        raise RuntimeError(f"cannot create topic {topic}: {code} {message}")
                log.info("created topics", extra={"topics": [names(s) for s in missing]})
            return [names(spec) for spec in missing]
        except (OSError, TimeoutError, KafkaConnectionError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise KafkaUnreachable(settings.bootstrap) from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
