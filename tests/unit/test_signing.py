"""Rule-event signatures: what verifies and what is rejected with which reason."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from pydantic import SecretStr

from shared.dlq import PoisonMessage, Record
from shared.settings import KafkaSettings
from shared.signing import HEADER, PipelineSignatures, RecordSigner, signature

OLD, NEW = SecretStr("old-secret"), SecretStr("new-secret")


TOPIC = "prod.rules.events"


def record(
    key: bytes, value: bytes, headers: list[tuple[str, bytes]], topic: str = TOPIC
) -> Record:
    return Record(topic, 0, 0, key, value, {k: v.decode() for k, v in headers})


def reason(signer: RecordSigner, rec: Record) -> str | None:
    try:
        signer.check(rec)
    except PoisonMessage as exc:
        return exc.reason
    return None


def test_signed_records_verify_and_tampering_is_detected() -> None:
    signer = RecordSigner(NEW)
    headers = signer.headers(TOPIC, b"acme:r1", b'{"v":1}')
    assert reason(signer, record(b"acme:r1", b'{"v":1}', headers)) is None
    assert reason(signer, record(b"acme:r1", b'{"v":2}', headers)) == "bad_signature"
    assert reason(signer, record(b"acme:r2", b'{"v":1}', headers)) == "bad_signature"
    # Moving bytes between key and value keeps the concatenation but not the signature.
    assert reason(signer, record(b"acme:r", b'1{"v":1}', headers)) == "bad_signature"
    assert reason(signer, record(b"acme:r1", b'{"v":1}', [])) == "unsigned"
    # The same signed record replayed into another environment's prefix.
    assert reason(signer, record(b"acme:r1", b'{"v":1}', headers, "staging.rules.events")) == (
        "bad_signature"
    )
    forged = RecordSigner(SecretStr("guess")).headers(TOPIC, b"acme:r1", b'{"v":1}')
    assert reason(signer, record(b"acme:r1", b'{"v":1}', forged)) == "bad_signature"


def test_rotation_accepts_the_previous_key_until_it_is_removed() -> None:
    by_old = RecordSigner(OLD).headers(TOPIC, b"k", b"v")
    assert reason(RecordSigner(NEW, previous_key=OLD), record(b"k", b"v", by_old)) is None
    assert reason(RecordSigner(NEW), record(b"k", b"v", by_old)) == "bad_signature"


def test_disabled_signer_adds_no_header() -> None:
    signer = RecordSigner(None)
    assert not signer.enabled
    assert signer.headers(TOPIC, b"k", b"v") == []
    assert reason(signer, record(b"k", b"v", [])) is None  # nothing is checked


@pytest.mark.parametrize("secret", ["s", "a much longer shared secret ✓"])
def test_signature_format(secret: str) -> None:
    value = signature(SecretStr(secret), TOPIC, b"k", b"v")
    assert value.startswith("hmac-sha256-v2=")
    assert len(value) == len("hmac-sha256-v2=") + 64
    # Moving bytes between topic and key changes the signature too.
    assert signature(SecretStr(secret), TOPIC + "k", b"", b"v") != value
    assert HEADER == "alignstream-signature"


def test_the_signature_is_the_documented_wire_format() -> None:
    """What another producer (any language) must compute: HMAC-SHA256 over the 4-byte
    big-endian length of the topic, the topic, the length of the key, the key, then the value."""
    topic, key, value = "prod.rules.events", b"acme:r1", b'{"v":1}'
    mac = hmac.new(b"k", digestmod=hashlib.sha256)
    for part in (topic.encode(), key):
        mac.update(struct.pack(">I", len(part)) + part)
    mac.update(value)
    assert signature(SecretStr("k"), topic, key, value) == "hmac-sha256-v2=" + mac.hexdigest()


def test_a_signer_is_built_from_the_kafka_settings() -> None:
    from shared.settings import KafkaSettings

    settings = KafkaSettings(rule_signing_key=NEW, rule_signing_previous_key=OLD)
    signer = RecordSigner.for_rules(settings)
    assert signer.enabled
    by_old = RecordSigner(OLD).headers(TOPIC, b"k", b"v")
    assert reason(signer, record(b"k", b"v", by_old)) is None
    assert not RecordSigner.for_rules(KafkaSettings()).enabled


def test_the_pipeline_key_signs_and_checks_only_the_topics_that_name_a_tenant() -> None:
    kafka = KafkaSettings(topic_prefix="prod.", pipeline_signing_key=NEW)
    signatures = PipelineSignatures(kafka)
    signed = ["prod.chat.requests", "prod.chat.grounded", "prod.chat.responses",
              "prod.chat.cancels", "prod.exam.jobs", "prod.exam.answers", "prod.research.jobs",
              "prod.replies.gw-1"]  # fmt: skip
    for topic in signed:
        headers = signatures.sign(topic, b"acme:r1", b"{}", {"traceparent": "t"})
        assert headers["traceparent"] == "t"
        check = signatures.check_for(topic)
        assert check is not None
        check(record(b"acme:r1", b"{}", [(k, v.encode()) for k, v in headers.items()], topic))
        assert reason(signatures.signer, record(b"acme:r1", b"{}", [], topic)) == "unsigned"
    for topic in ("prod.rules.indexed", "prod.chat.tokens", "prod.chat.requests.dlq",
                  "chat.requests"):  # fmt: skip
        assert signatures.sign(topic, b"k", b"v", {}) == {}
        assert signatures.check_for(topic) is None
    # No key: nothing is signed or checked.
    off = PipelineSignatures(KafkaSettings(topic_prefix="prod."))
    assert off.sign("prod.chat.requests", b"k", b"v", {}) == {}
    assert off.check_for("prod.chat.requests") is None


def test_the_status_names_the_key_that_signed_for_the_rules_history() -> None:
    rotating = RecordSigner(NEW, previous_key=OLD)
    by_new = record(b"k", b"v", RecordSigner(NEW).headers(TOPIC, b"k", b"v"))
    by_old = record(b"k", b"v", RecordSigner(OLD).headers(TOPIC, b"k", b"v"))
    assert rotating.status(by_new) == "verified"
    assert rotating.status(by_old) == "verified_previous_key"
    assert RecordSigner(None).status(by_old) == "not_checked"
    forged = record(b"k", b"v", RecordSigner(SecretStr("x")).headers(TOPIC, b"k", b"v"))
    with pytest.raises(PoisonMessage, match="does not match"):
        rotating.status(forged)
