"""Event contracts: versioning, validation, wire format."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from shared import events
from shared.strategies import spec_of
from tests.samples import sample_events, sample_rule


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_every_model_round_trips_through_json(event: events.Event) -> None:
    decoded = events.ANY_EVENT.validate_json(events.encode(event))
    assert decoded == event
    assert type(decoded) is type(event)


def test_unknown_fields_are_rejected() -> None:
    data = events.RuleUpsert(rule=sample_rule()).model_dump(mode="json")
    data["rule"]["colour"] = "red"
    with pytest.raises(ValidationError, match="colour"):
        events.RULE_EVENT.validate_python(data)


def test_other_schema_versions_are_rejected() -> None:
    data = events.RuleUpsert(rule=sample_rule()).model_dump(mode="json")
    data["v"] = 2
    with pytest.raises(ValidationError):
        events.RULE_EVENT.validate_python(data)


def test_effective_dates_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="before effective_from"):
        sample_rule(effective_from=date(2025, 1, 2), effective_until=date(2025, 1, 1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant", "a:b"),  # would make tenant:rule_id keys ambiguous
        ("tenant", ""),
        ("rule_id", "has space"),
        ("version", 0),
        ("text", ""),
        ("text", "x" * (events.MAX_RULE_TEXT_CHARS + 1)),
        ("priority", 1001),
    ],
)
def test_rule_field_limits(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        sample_rule(**{field: value})


def test_unicode_rule_ids_and_keys() -> None:
    rule = sample_rule(rule_id="民法典-第1条")
    assert events.RuleUpsert(rule=rule).key == "acme:民法典-第1条"


def test_response_error_invariant() -> None:
    with pytest.raises(ValidationError, match="exactly when ok is false"):
        events.ChatResponse(request_id="r", tenant="t", ok=False)
    with pytest.raises(ValidationError, match="exactly when ok is false"):
        events.ChatResponse(
            request_id="r",
            tenant="t",
            error=events.ErrorInfo(kind=events.ErrorKind.BACKEND, message="x"),
        )


def test_dead_letter_keeps_arbitrary_bytes_as_base64() -> None:
    letter = events.DeadLetter(
        service="s", source_topic="t", original=b"\x00\xff\xfe", reason="r", error="e"
    )
    wire = events.encode(letter)
    assert b'"original":"AP/+"' in wire
    assert events.DeadLetter.model_validate_json(wire).original == b"\x00\xff\xfe"


def test_query_is_the_last_user_message() -> None:
    request = events.ChatRequest(
        tenant="t",
        messages=(
            events.ChatMessage(role=events.Role.USER, content="first"),
            events.ChatMessage(role=events.Role.ASSISTANT, content="answer"),
            events.ChatMessage(role=events.Role.USER, content="second"),
            events.ChatMessage(role=events.Role.ASSISTANT, content="prefill"),
        ),
    )
    assert request.query == "second"
    assert request.question == "second"


def test_retrieval_searches_with_a_bounded_prefix_and_the_model_gets_it_all() -> None:
    long = "x" * 100_000
    request = events.ChatRequest(
        tenant="t", messages=(events.ChatMessage(role=events.Role.USER, content=long),)
    )
    assert request.query == long[: events.MAX_QUERY_CHARS]
    assert request.question == long


def test_only_opo_and_its_candidate_arm_search_rules() -> None:
    assert [s for s in events.Strategy if spec_of(s).searches] == [
        events.Strategy.OPO,
        events.Strategy.CANDIDATE,
    ]
