"""Validation errors in a user's words: no regular expressions, no pydantic phrasing, formats
named; the gateway's 400s and the CLI's one-line errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.cli.failures import explain
from services.gateway.errors import invalid
from services.gateway.protocol import ApplicableRequest, RuleBody
from shared import events
from shared.validation_text import describe


def errors_of(model: Any, data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    return list(raised.value.errors())


def test_a_body_that_is_not_json_names_the_character_not_a_field() -> None:
    # FastAPI reports a JSON syntax error at ("body", <character offset>).
    error = invalid([{"type": "json_invalid", "loc": ("body", 43), "msg": "JSON decode error",
                      "ctx": {"error": "Expecting ',' delimiter"}}])  # fmt: skip
    assert error.detail.message == "the body is not valid JSON (at character 43)"
    assert error.detail.param is None


def test_dates_name_their_format_and_a_tenant_field_is_explained() -> None:
    error = invalid(errors_of(ApplicableRequest, {"text": "x", "as_of": "yesterday"}))
    assert error.detail.message == "as_of: must be a date written YYYY-MM-DD, e.g. 2026-01-31"
    assert error.detail.param == "as_of"
    tenant = invalid(errors_of(RuleBody, {"text": "x", "tenant": "globex"}))
    assert tenant.detail.message == "tenant: leave 'tenant' out: the API key decides it"
    other = invalid(errors_of(RuleBody, {"text": "x", "colour": "red"}))
    assert other.detail.message == "colour: is not a known field"


def test_patterns_and_bounds_in_words() -> None:
    (pattern,) = errors_of(events.Rule, {"tenant": "my shop", "rule_id": "r", "version": 1,
                                         "text": "t"})  # fmt: skip
    text = describe(pattern).text
    assert "^" not in text
    assert "letters, digits, '_' and '-'" in text
    top_k = invalid(errors_of(ApplicableRequest, {"text": "x", "top_k": 0}))
    assert top_k.detail.message == "top_k: must be at least 1"
    empty = invalid(errors_of(ApplicableRequest, {"text": ""}))
    assert empty.detail.message == "text: must not be empty"


def test_the_cli_says_it_the_same_way() -> None:
    with pytest.raises(ValidationError) as raised:
        events.ChatRequest(tenant="my shop", messages=())
    failure = explain(raised.value)
    assert failure.message.startswith("invalid tenant: must be letters, digits")
    assert "pattern" not in failure.message
