"""The audit trail: one entry per answered request (``audit.entries``, as generation answers),
and the same entry chained per tenant (``audit.log``: sequence number, the previous link's hash
and its own), so that a removed, altered or reordered record is detected (``audit verify``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from shared.events.base import Event, Identifier, TenantId
from shared.events.chat import Citation, MemoryWatermark, RuleRef, SearchedScope, Strategy

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class AuditEntry(Event):
    """What an answered request was: who asked (tenant, request), what (the question, or its
    SHA-256 with ``ALIGNSTREAM_GENERATION_AUDIT_QUESTIONS=hash``), under which scope, which rule
    versions it was given and attributed to, in which state of the memory, by which model and
    strategy, how long it took and how it ended."""

    kind: Literal["audit.entry"] = "audit.entry"
    tenant: TenantId
    request_id: Identifier
    question: Annotated[str, StringConstraints(max_length=4000)] = ""
    question_sha256: Sha256
    searched_scope: SearchedScope | None = None
    grounded_in: tuple[RuleRef, ...] = Field(default=(), max_length=200)
    cited: tuple[Citation, ...] = Field(default=(), max_length=200)
    memory_watermark: MemoryWatermark = Field(default_factory=dict)
    model: str = ""
    strategy: Strategy
    latency_ms: float = 0.0
    outcome: str
    """``ok``, or the error's kind (``timeout``, ``backend``, ...)."""
    answered_at: datetime

    @property
    def key(self) -> str:
        return self.tenant


MAX_AUDIT_BATCH = 256


class AuditBatch(Event):
    """Entries of one tenant published as one record: a generation instance collects its
    answers' entries for a few milliseconds, so the audit costs the answer path a fraction of a
    Kafka record per answer instead of a whole one. The chainer chains them in order."""

    kind: Literal["audit.batch"] = "audit.batch"
    tenant: TenantId
    entries: tuple[AuditEntry, ...] = Field(min_length=1, max_length=MAX_AUDIT_BATCH)

    @model_validator(mode="after")
    def _one_tenant(self) -> AuditBatch:
        if any(entry.tenant != self.tenant for entry in self.entries):
            raise ValueError("an audit batch holds one tenant's entries")
        return self

    @property
    def key(self) -> str:
        return self.tenant


AuditRecord = AuditEntry | AuditBatch
"""What ``audit.entries`` carries."""


def entries_of(record: AuditRecord) -> tuple[AuditEntry, ...]:
    """The entries of an ``audit.entries`` record, in order."""
    return record.entries if isinstance(record, AuditBatch) else (record,)


class AuditLink(Event):
    """An entry in its tenant's hash chain: ``hash`` = SHA-256 of ``prev_hash`` and the entry's
    canonical JSON (``shared/audit_chain.py``); the first link's ``prev_hash`` is 64 zeros."""

    kind: Literal["audit.link"] = "audit.link"
    tenant: TenantId
    seq: int = Field(ge=1)
    prev_hash: Sha256
    hash: Sha256
    entry: AuditEntry

    @property
    def key(self) -> str:
        return self.tenant
