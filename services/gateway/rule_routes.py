"""``/v1/rules``: list, read, write and delete rules, their history and lifecycle (admin keys,
checked by ``Authenticated``), and the check endpoint (any key)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.caller import ERRORS, Caller
from services.gateway.errors import ApiError
from services.gateway.protocol import (
    ApplicableRequest,
    ApplicableRules,
    RuleBody,
    RuleChange,
    RuleList,
    RuleView,
)
from services.gateway.rule_admin import RuleAdminApi
from services.gateway.rule_protocol import RollbackBody, RuleHistoryPage
from services.gateway.rules import ApplicableCheck, RulesApi
from shared.events import MAX_RULE_VERSION, Label, RuleDomain, RuleStatus
from shared.memory.query import RuleSelection

Labels = Annotated[tuple[Label, ...], Query(max_length=32)]


def rules_router(rules: RulesApi, admin: RuleAdminApi, check: ApplicableCheck | None) -> APIRouter:
    router = APIRouter(prefix="/v1/rules", tags=["rules"], responses=ERRORS)

    @router.get("", response_model=RuleList)
    async def list_rules(
        key: Caller,
        cursor: Annotated[str | None, Query(max_length=24)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        scope: Labels = (),
        domain: Annotated[tuple[RuleDomain, ...], Query(max_length=8)] = (),
        status: Annotated[tuple[RuleStatus, ...], Query(max_length=4)] = (),
        tag: Labels = (),
        in_force: date | None = None,
    ) -> RuleList:
        """The tenant's rules in rule id order; each filter given must match (``scope``: rules
        that apply there, its ancestors and ``global`` included)."""
        selection = RuleSelection(scope, domain, status, tag, in_force=in_force)
        return await rules.page(key, selection, cursor=cursor, limit=limit)

    @router.post("/applicable", response_model=ApplicableRules)
    async def applicable(body: ApplicableRequest, key: Caller) -> ApplicableRules:
        if check is None:
            raise ApiError(501, "The check endpoint is off on this gateway.", code="disabled")
        return await check.applicable(key, body)

    @router.get("/{rule_id}", response_model=RuleView)
    async def get_rule(rule_id: str, key: Caller) -> RuleView:
        return await rules.get(key, rule_id)

    @router.put("/{rule_id}", response_model=RuleChange)
    async def put_rule(rule_id: str, body: RuleBody, key: Caller, wait: bool = False) -> RuleChange:
        return await rules.put(key, rule_id, body, wait=wait)

    @router.delete("/{rule_id}", response_model=RuleChange)
    async def delete_rule(
        rule_id: str,
        key: Caller,
        version: Annotated[int | None, Query(ge=1, le=MAX_RULE_VERSION)] = None,
        wait: bool = False,
    ) -> RuleChange:
        return await rules.delete(key, rule_id, version=version, wait=wait)

    @router.get("/{rule_id}/history", response_model=RuleHistoryPage)
    async def rule_history(
        rule_id: str,
        key: Caller,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, le=MAX_RULE_VERSION)] = None,
    ) -> RuleHistoryPage:
        """Every version kept, newest first: event time, publisher, signature, content."""
        return await admin.history(key, rule_id, limit=limit, before=before)

    @router.post("/{rule_id}/rollback", response_model=RuleChange)
    async def rollback(
        rule_id: str, body: RollbackBody, key: Caller, wait: bool = False
    ) -> RuleChange:
        """``to_version``'s content, published as the rule's next version."""
        return await admin.rollback(key, rule_id, body, wait=wait)

    @router.post("/{rule_id}/activate", response_model=RuleChange)
    async def activate(rule_id: str, key: Caller, wait: bool = False) -> RuleChange:
        return await admin.set_status(key, rule_id, RuleStatus.ACTIVE, wait=wait)

    @router.post("/{rule_id}/deactivate", response_model=RuleChange)
    async def deactivate(rule_id: str, key: Caller, wait: bool = False) -> RuleChange:
        """Stop serving the rule; it stays, with its history."""
        return await admin.set_status(key, rule_id, RuleStatus.INACTIVE, wait=wait)

    return router
