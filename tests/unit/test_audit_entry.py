"""The audit entry of an answer: what it keeps of the question, the rules and the outcome, and
that hostile sizes are cut to the entry's bounds (never a request left unaudited)."""

from __future__ import annotations

import hashlib

from services.generation.audit import audit_entry
from shared import events


def answered(question: str, rules: int) -> tuple[events.ChatRequest, events.ChatResponse]:
    request = events.ChatRequest(tenant="acme", messages=(
        events.ChatMessage(role=events.Role.USER, content=question),))  # fmt: skip
    refs = tuple(events.RuleRef(rule_id=f"r{i}", version=i + 1) for i in range(rules))
    response = events.ChatResponse(
        request_id=request.request_id,
        tenant="acme",
        text="ok",
        grounded_in=refs,
        model="m",
        memory_watermark={0: 4},
    )
    return request, response


def test_the_entry_keeps_the_questions_hash_by_default_and_its_text_when_asked() -> None:
    request, response = answered("Can I return shoes?", 2)
    hashed = audit_entry(request, response, "hash")
    assert hashed.question == ""
    assert hashed.question_sha256 == hashlib.sha256(b"Can I return shoes?").hexdigest()
    assert [r.rule_id for r in hashed.grounded_in] == ["r0", "r1"]
    assert (hashed.outcome, hashed.model, hashed.memory_watermark) == ("ok", "m", {0: 4})
    assert audit_entry(request, response, "text").question == "Can I return shoes?"
    failed = response.model_copy(update={"ok": False, "error": events.ErrorInfo(
        kind=events.ErrorKind.TIMEOUT, message="slow")})  # fmt: skip
    assert audit_entry(request, failed, "hash").outcome == "timeout"


def test_an_entry_built_from_hostile_sizes_is_still_a_valid_entry() -> None:
    request, response = answered("x" * 30_000, 250)
    entry = audit_entry(request, response, "text")
    again = events.AuditEntry.model_validate_json(entry.model_dump_json())
    assert len(again.question) == 4000
    assert len(again.grounded_in) == 200
    assert again == entry
