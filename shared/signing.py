"""Shared-secret signatures on records: only holders of the key change the memory (rule events,
``rule_signing_key``), and only the pipeline's own producers name a tenant on the chat path and
the job topics (``pipeline_signing_key``, ``SIGNED_PIPELINE_TOPICS``).

The producer puts an HMAC-SHA256 of the record's topic, key and value in a header; ingest (and a
memory rebuild) verify it when a key is configured, and dead-letter unsigned (``unsigned``) or
forged (``bad_signature``) events. The key is covered so a signed event cannot be replayed under
another rule's key, and the topic (with its deployment prefix) so that it cannot be replayed into
another environment sharing the cluster and the key. A second key is accepted while verifying,
for rotation: publishers switch to the new key while ingest accepts both, then the old one is
removed. Replaying an old signed event changes nothing: versions only move forward (and the
version ledger survives ``memory rebuild --drop``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import SecretStr

from shared.dlq import PoisonMessage, Record
from shared.settings import KafkaSettings
from shared.topics import (
    AUDIT_ENTRIES,
    AUDIT_LOG,
    CHAT_CANCELS,
    CHAT_GROUNDED,
    CHAT_REQUESTS,
    CHAT_RESPONSES,
    EXAM_ANSWERS,
    EXAM_JOBS,
    RESEARCH_JOBS,
    TopicSpec,
)

HEADER = "alignstream-signature"
SCHEME = "hmac-sha256-v2="
"""v2 covers the topic; v1 (key and value only) signatures are not accepted."""

SignatureStatus = Literal["verified", "verified_previous_key", "not_checked"]
"""How a consumed record's signature stood: valid under the current key, valid under the
previous key (a rotation in progress), or not checked (signing off where it was consumed)."""


def signature(secret: SecretStr, topic: str, key: bytes, value: bytes) -> str:
    """The header value for one record."""
    mac = hmac.new(secret.get_secret_value().encode(), digestmod=hashlib.sha256)
    for part in (topic.encode(), key):  # length-prefixed: the parts cannot be shifted
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    mac.update(value)
    return SCHEME + mac.hexdigest()


class RecordSigner:
    """Signs records (publishers) and checks them (consumers): rule events, or the pipeline's
    messages that name a tenant."""

    def __init__(self, key: SecretStr | None, previous_key: SecretStr | None = None) -> None:
        self._key = key
        self._accepted = [k for k in (key, previous_key) if k is not None]

    @classmethod
    def for_rules(cls, settings: KafkaSettings) -> RecordSigner:
        return cls(settings.rule_signing_key, settings.rule_signing_previous_key)

    @classmethod
    def for_pipeline(cls, settings: KafkaSettings) -> RecordSigner:
        return cls(settings.pipeline_signing_key, settings.pipeline_signing_previous_key)

    @property
    def enabled(self) -> bool:
        """Whether events are signed, and unsigned ones rejected."""
        return self._key is not None

    def headers(self, topic: str, key: bytes, value: bytes) -> list[tuple[str, bytes]]:
        """Kafka headers to publish with a rule event on ``topic`` (the full name, with the
        deployment prefix); none when signing is off."""
        if self._key is None:
            return []
        return [(HEADER, signature(self._key, topic, key, value).encode())]

    def check(self, record: Record) -> None:
        """Raise ``PoisonMessage`` unless the record carries a valid signature (nothing to check
        when signing is off)."""
        self.status(record)

    def status(self, record: Record) -> SignatureStatus:
        """Which key signed the record; ``PoisonMessage`` when none did (signing on)."""
        if not self.enabled:
            return "not_checked"
        given = record.headers.get(HEADER)
        if given is None:
            raise PoisonMessage("unsigned", f"no {HEADER} header; records here must be signed")
        key = record.key or b""
        for position, secret in enumerate(self._accepted):
            if hmac.compare_digest(given, signature(secret, record.topic, key, record.value)):
                return "verified" if position == 0 else "verified_previous_key"
        raise PoisonMessage("bad_signature", "signature does not match the topic, key and value")


SIGNED_PIPELINE_TOPICS: tuple[TopicSpec, ...] = (
    CHAT_REQUESTS,
    CHAT_GROUNDED,
    CHAT_RESPONSES,
    CHAT_CANCELS,
    EXAM_JOBS,
    EXAM_ANSWERS,
    RESEARCH_JOBS,
    AUDIT_ENTRIES,
    AUDIT_LOG,
)
"""Topics whose messages name a tenant and are acted on for it: with a pipeline signing key,
their producers sign them and their consumers dead-letter what is unsigned or forged. A
client's own ``replies.<name>`` topics are signed too."""


class PipelineSignatures:
    """The pipeline key applied by topic: what a service signs as it publishes and checks as
    it consumes (``Service`` does both for every topic in ``SIGNED_PIPELINE_TOPICS``)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.signer = RecordSigner.for_pipeline(settings)
        self.topics = settings.topics
        # Full names, once: ``applies`` runs for every record published.
        self._signed = {self.topics(spec) for spec in SIGNED_PIPELINE_TOPICS}

    def applies(self, topic: str) -> bool:
        """Whether records on ``topic`` (a full name) carry pipeline signatures."""
        return self.signer.enabled and (
            topic in self._signed or self.topics.is_client_replies(topic)
        )

    def sign(
        self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """``headers`` plus the record's signature when ``topic`` is signed."""
        if not self.applies(topic):
            return dict(headers)
        signed = self.signer.headers(topic, key or b"", value)
        return {**headers, **{name: text.decode() for name, text in signed}}

    def check_for(self, topic: str) -> Callable[[Record], None] | None:
        """The check of records consumed from ``topic``; None when it is not signed."""
        return self.signer.check if self.applies(topic) else None
