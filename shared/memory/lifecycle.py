"""What an admin does to rules that exist: roll one back to an old version, activate it,
deactivate it. Each change is a new version of the rule (an upsert, published like any edit),
so it is ordered, confirmed, signed and in the history like every other; nothing is rewritten
in place. The CLI (``rules rollback|activate|deactivate``) and the rules API both build their
events here."""

from __future__ import annotations

from shared.errors import Hinted
from shared.events import MAX_RULE_VERSION, Rule, RuleStatus, RuleUpsert
from shared.memory.history import RuleHistory
from shared.memory.reader import RuleReader, StoredRule


class RuleChangeRefused(Hinted):
    """A lifecycle change that cannot be made; ``status`` is the HTTP status it answers."""

    def __init__(self, message: str, hint: str, status: int) -> None:
        super().__init__(message, hint)
        self.status = status


def _no_rule(rule_id: str) -> RuleChangeRefused:
    return RuleChangeRefused(f"no live rule {rule_id!r} in this tenant's memory",
                             "list the tenant's rules: alignstream rules list", 404)  # fmt: skip


def _from_document(tenant: str, stored: StoredRule) -> Rule:
    """A rule rebuilt from its document, for rules published before histories were kept
    (tags come back as indexed: normalized)."""
    return Rule(
        tenant=tenant, rule_id=stored.rule_id, version=stored.version, title=stored.title,
        text=stored.text, domain=stored.domain, jurisdiction=stored.jurisdiction,
        locale=stored.locale, status=stored.status, tags=stored.tags, priority=stored.priority,
        effective_from=stored.effective_from, effective_until=stored.effective_until,
        source=stored.source,
    )  # fmt: skip


class RuleLifecycle:
    def __init__(self, reader: RuleReader, history: RuleHistory) -> None:
        self.reader = reader
        self.history = history

    async def next_version(self, tenant: str, rule_id: str) -> int:
        """Above every version applied or published (a published one may not be applied
        yet: the new version must still win over it)."""
        applied = abs(await self.reader.version(tenant, rule_id))
        version = max(applied, await self.history.newest_version(tenant, rule_id)) + 1
        if version > MAX_RULE_VERSION:
            raise RuleChangeRefused(f"rule {rule_id!r} has reached the highest version",
                                    "publish it under a new rule id", 409)  # fmt: skip
        return version

    async def current(self, tenant: str, rule_id: str) -> Rule | None:
        """The live version's content: from the history (exact), else from its document."""
        applied = await self.reader.version(tenant, rule_id)
        if applied <= 0:
            return None
        entry = await self.history.at(tenant, rule_id, applied)
        if entry is not None and entry.rule is not None:
            return entry.rule
        stored = await self.reader.get(tenant, rule_id)
        return None if stored is None else _from_document(tenant, stored)

    async def rollback(
        self, tenant: str, rule_id: str, to_version: int, *, publisher: str | None
    ) -> RuleUpsert:
        """Version ``to_version``'s content as the rule's next version (a deleted rule comes
        back this way too)."""
        entry = await self.history.at(tenant, rule_id, to_version)
        if entry is None:
            raise RuleChangeRefused(
                f"rule {rule_id!r} has no version {to_version} in its history",
                f"see its versions: alignstream rules history {rule_id}", 404,
            )  # fmt: skip
        if entry.rule is None:
            raise RuleChangeRefused(
                f"version {to_version} of {rule_id!r} deleted the rule: nothing to restore",
                "roll back to a version that set the rule's text", 409,
            )  # fmt: skip
        version = await self.next_version(tenant, rule_id)
        rule = entry.rule.model_copy(update={"version": version})
        return RuleUpsert(rule=rule, publisher=publisher)

    async def with_status(
        self, tenant: str, rule_id: str, status: RuleStatus, *, publisher: str | None
    ) -> RuleUpsert | None:
        """The live rule with ``status`` as its next version; None when it has it already."""
        rule = await self.current(tenant, rule_id)
        if rule is None:
            raise _no_rule(rule_id)
        if rule.status is status:
            return None
        version = await self.next_version(tenant, rule_id)
        changed = rule.model_copy(update={"version": version, "status": status})
        return RuleUpsert(rule=changed, publisher=publisher)
