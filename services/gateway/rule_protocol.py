"""Bodies of the rule lifecycle routes (admin keys): a rule's history, rollback and status
changes. The rule views themselves are in ``protocol``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.gateway.protocol import RuleView, Strict
from shared.events.rules import MAX_RULE_VERSION
from shared.signing import SignatureStatus


class RuleVersionView(BaseModel):
    """One published version of a rule (``GET /v1/rules/{rule_id}/history``)."""

    version: int
    op: Literal["upsert", "delete"]
    live: bool
    """Whether this is the version the memory serves now."""
    event_id: str
    event_time: datetime
    recorded_at: datetime
    publisher: str | None
    signature: SignatureStatus
    source: str
    """Where ingest read it: ``topic/partition@offset``."""
    rule: RuleView | None
    """The version's content (None for a delete)."""


class RuleHistoryPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[RuleVersionView]
    next_before: int | None = None
    """Pass as ``before`` for older versions; None: this page reached the oldest kept."""


class RollbackBody(Strict):
    """``POST /v1/rules/{rule_id}/rollback``: this version's content becomes the next one."""

    to_version: int = Field(ge=1, le=MAX_RULE_VERSION)
