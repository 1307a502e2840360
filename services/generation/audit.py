"""The audit entry of an answered request (``audit.entries``): built from the request and its
response, with the question as text or only its SHA-256 (``audit_questions``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from shared import events

AuditQuestions = Literal["text", "hash"]


def audit_entry(
    request: events.ChatRequest, response: events.ChatResponse, questions: AuditQuestions
) -> events.AuditEntry:
    question = request.question
    outcome = "ok" if response.error is None else response.error.kind.value
    # Validated (in Rust: faster than model_construct); every field is cut to the entry's bounds.
    return events.AuditEntry(
        tenant=request.tenant,
        request_id=request.request_id,
        question=question[:4000] if questions == "text" else "",
        question_sha256=hashlib.sha256(question.encode()).hexdigest(),
        searched_scope=response.searched_scope,
        grounded_in=response.grounded_in[:200],
        cited=response.cited[:200],
        memory_watermark=response.memory_watermark,
        model=response.model,
        strategy=request.strategy,
        latency_ms=response.timings.total_ms,
        outcome=outcome,
        answered_at=datetime.now(UTC),
    )
