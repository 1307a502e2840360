"""Bodies of the rule lifecycle routes (admin keys): a rule's history, rollback and status
changes. The rule views themselves are in ``protocol``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.gateway.protocol import RuleView, Strict
from shared.events.rules import MAX_RULE_VERSION
from shared.memory.history import HistoryEntry


class RuleVersionView(HistoryEntry):
    """One published version of a rule (``GET /v1/rules/{rule_id}/history``): when it was
    published, by whom, how it was signed, where ingest read it, and its content."""

    live: bool
    """Whether this is the version the memory serves now."""
    rule: RuleView | None = None  # type: ignore[assignment]
    """The version's content (None for a delete)."""


class RuleHistoryPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[RuleVersionView]
    next_before: int | None = None
    """Pass as ``before`` for older versions; None: this page reached the oldest kept."""


class RollbackBody(Strict):
    """``POST /v1/rules/{rule_id}/rollback``: this version's content becomes the next one."""

    to_version: int = Field(ge=1, le=MAX_RULE_VERSION)
