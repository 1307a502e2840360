"""Everyday mistakes give one line and a hint, never a traceback (unless --debug)."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from services.cli import main as cli
from services.cli.failures import explain
from shared import events
from shared.errors import KafkaUnreachable, NoAnswer, NotConfirmed
from shared.logging import ReadableFormatter


def validation_error() -> ValidationError:
    try:
        events.ChatRequest(tenant="my shop", messages=())
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


def test_known_failures_are_explained() -> None:
    kafka = explain(KafkaConnectionError("Unable to bootstrap"))
    assert "KAFKA_BOOTSTRAP" in kafka.hint
    assert "REDIS_URL" in explain(RedisConnectionError("refused")).hint
    invalid = explain(validation_error())
    assert invalid.message.startswith("invalid tenant:")
    assert "'my shop'" in invalid.message
    assert "(and 1 more)" in invalid.message
    assert "generation" in explain(NoAnswer("no answer", stage="generation")).hint
    assert "safe in rules.events" in explain(NotConfirmed("3 missing")).hint
    assert "--debug" in explain(RuntimeError("boom")).hint


def test_main_prints_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(**_: object) -> None:
        raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:1")

    monkeypatch.setattr(cli, "app", failing)
    with pytest.raises(SystemExit) as exited:
        cli.main(["topics", "check"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0].startswith("error: Kafka not reachable")
    with pytest.raises(KafkaConnectionError):  # --debug anywhere: the traceback
        cli.main(["topics", "--debug", "check"])


def test_readable_logs_carry_their_extras() -> None:
    import logging

    record = logging.LogRecord("x", logging.INFO, "f", 1, "service started", None, None)
    record.http_port = 8080
    record.service = "ingest"
    line = ReadableFormatter("ingest").format(record)
    assert line.endswith("INFO    ingest: service started  http_port=8080")


def test_an_unreachable_broker_names_the_variable_to_set() -> None:
    failure = explain(KafkaUnreachable("127.0.0.1:1"))
    assert failure.message == "Kafka at 127.0.0.1:1 not reachable"
    assert "KAFKA_BOOTSTRAP" in failure.hint
