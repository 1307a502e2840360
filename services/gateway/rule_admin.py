"""The rule lifecycle over REST (admin keys): a rule's history, rollback to an old version,
activate and deactivate; no transport here. Every change is a new version built by
``RuleLifecycle`` and published through ``RulesApi.change`` like any edit."""

from __future__ import annotations

from services.gateway.errors import ApiError
from services.gateway.protocol import RuleChange, RuleView
from services.gateway.rule_protocol import (
    RollbackBody,
    RuleHistoryPage,
    RuleVersionView,
)
from services.gateway.rules import RulesApi, checked_rule_id, publisher_of
from shared import events
from shared.memory.history import HistoryEntry
from shared.memory.lifecycle import RuleChangeRefused, RuleLifecycle
from shared.tenants import ApiKey


def _version_view(entry: HistoryEntry, applied: int) -> RuleVersionView:
    # A RuleView is a rule's fields without its tenant (the key's own).
    content = (
        None
        if entry.rule is None
        else RuleView.model_validate(entry.rule.model_dump(mode="json", exclude={"tenant"}))
    )
    return RuleVersionView(**entry.model_dump(exclude={"rule"}), live=entry.version == applied,
                           rule=content)  # fmt: skip


def _refused(error: RuleChangeRefused) -> ApiError:
    code = "rule_not_found" if error.status == 404 else "conflict"
    return ApiError(error.status, str(error), code=code)


class RuleAdminApi:
    def __init__(self, rules: RulesApi, lifecycle: RuleLifecycle) -> None:
        self.rules = rules
        self.lifecycle = lifecycle

    async def history(
        self, key: ApiKey, rule_id: str, *, limit: int, before: int | None
    ) -> RuleHistoryPage:
        rule_id = checked_rule_id(rule_id)
        entries = await self.lifecycle.history.versions(key.tenant, rule_id, limit=limit,
                                                         before=before)  # fmt: skip
        applied = await self.lifecycle.reader.version(key.tenant, rule_id)
        older = entries[-1].version if len(entries) == limit and entries[-1].version > 1 else None
        return RuleHistoryPage(data=[_version_view(e, applied) for e in entries],
                               next_before=older)  # fmt: skip

    async def rollback(
        self, key: ApiKey, rule_id: str, body: RollbackBody, *, wait: bool
    ) -> RuleChange:
        rule_id = checked_rule_id(rule_id)
        try:
            event = await self.lifecycle.rollback(key.tenant, rule_id, body.to_version,
                                                  publisher=publisher_of(key))  # fmt: skip
        except RuleChangeRefused as error:
            raise _refused(error) from None
        return await self.rules.change(event, wait=wait)

    async def set_status(
        self, key: ApiKey, rule_id: str, status: events.RuleStatus, *, wait: bool
    ) -> RuleChange:
        rule_id = checked_rule_id(rule_id)
        try:
            event = await self.lifecycle.with_status(key.tenant, rule_id, status,
                                                     publisher=publisher_of(key))  # fmt: skip
        except RuleChangeRefused as error:
            raise _refused(error) from None
        if event is None:
            version = await self.lifecycle.reader.version(key.tenant, rule_id)
            return RuleChange(rule_id=rule_id, version=version, op="upsert", event_id=None,
                              outcome="unchanged")  # fmt: skip
        return await self.rules.change(event, wait=wait)
