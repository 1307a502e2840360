"""Shared-secret signatures on rule events: only holders of the key change the memory.

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

from pydantic import SecretStr

from shared.dlq import PoisonMessage, Record
from shared.settings import KafkaSettings

HEADER = "alignstream-signature"
SCHEME = "hmac-sha256-v2="
"""v2 covers the topic; v1 (key and value only) signatures are not accepted."""


def signature(secret: SecretStr, topic: str, key: bytes, value: bytes) -> str:
    """The header value for one record."""
    mac = hmac.new(secret.get_secret_value().encode(), digestmod=hashlib.sha256)
    for part in (topic.encode(), key):  # length-prefixed: the parts cannot be shifted
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    mac.update(value)
    return SCHEME + mac.hexdigest()


class RuleSigner:
    """Signs rule events (publishers) and checks them (ingest, rebuild)."""

    def __init__(self, key: SecretStr | None, previous_key: SecretStr | None = None) -> None:
        self._key = key
        self._accepted = [k for k in (key, previous_key) if k is not None]

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> RuleSigner:
        return cls(settings.rule_signing_key, settings.rule_signing_previous_key)

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
        if not self.enabled:
            return
        given = record.headers.get(HEADER)
        if given is None:
            raise PoisonMessage("unsigned", f"no {HEADER} header; rule events must be signed")
        key = record.key or b""
        if not any(
            hmac.compare_digest(given, signature(secret, record.topic, key, record.value))
            for secret in self._accepted
        ):
            raise PoisonMessage(
                "bad_signature", "signature does not match the topic, key and value"
            )
