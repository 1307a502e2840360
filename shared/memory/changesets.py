"""Change sets in Redis: staged versions, promoted for the tenant at once or discarded.

A staged upsert is a document in the tenant's own index (``RuleSchema.candidate_key``) whose
``status`` is ``staged``: live searches always ask for a status (``RuleFilter``), so they never
see it. A search for change set ``n`` asks for the live rules ``n`` does not shadow and for
``n``'s staged versions, ranked together as the memory would rank them once ``n`` is promoted.
Promote is one Lua script (``changeset_scripts.PROMOTE``): it checks the set's revision and
that no live version overtook a staged one, then writes the ledger and adds the set to the
tenant's settling sets, which every search reads first (``settling.py``): from that moment
searches serve the staged documents and not the ones they replace. No document is written, so
a promote costs the same for 10 rules as for 10,000, and a crash leaves the tenant fully old or
fully new. The documents then move into place (``settle``), each rule atomically. Redis-om is
not used: the set's record is read and changed by those scripts, in the same atomic steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis.asyncio as aioredis
from pydantic import TypeAdapter

from shared.events import (
    MAX_CHANGE_SET_RULES,
    ChangeSetDiscard,
    ChangeSetPromote,
    ChangeSetStage,
    IndexOutcome,
    RuleDelete,
    RuleUpsert,
)
from shared.memory import changeset_scripts as scripts
from shared.memory.index import RuleIndexes
from shared.memory.keys import RuleKeys
from shared.memory.schema import candidate_fields
from shared.memory.settling import settling_sets
from shared.redis import as_text, preload_scripts

CHANGE: TypeAdapter[RuleUpsert | RuleDelete] = TypeAdapter(RuleUpsert | RuleDelete)


@dataclass(frozen=True, slots=True)
class ChangeSetInfo:
    """A change set's record: ``open`` (staging), ``promoted`` or ``discarded``."""

    name: str
    state: str
    revision: int
    created_at: str
    closed_at: str | None
    members: int
    evidence: str | None
    """The JSON of the latest exam graded on this revision (``shared/changeset_gate.py``)."""


@dataclass(frozen=True, slots=True)
class PromoteResult:
    outcome: IndexOutcome
    reason: str = ""
    conflicts: tuple[str, ...] = ()
    changes: tuple[RuleUpsert | RuleDelete, ...] = field(default=())
    """What the promote made live (also on a repeated promote): republished to the rule log,
    so the log holds each rule's live version under its own key."""
    tenant: str = ""
    name: str = ""


_STAGE_CODES = {1: IndexOutcome.APPLIED, 0: IndexOutcome.STALE}
_PROMOTE_REASONS = {-1: "the change set is discarded or unknown",
                    -3: "the change set changed since that revision"}  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ChangeSetStore:
    def __init__(
        self, client: aioredis.Redis, keys: RuleKeys, *, indexes: RuleIndexes | None = None,
        max_rules: int = MAX_CHANGE_SET_RULES,
    ) -> None:  # fmt: skip
        """``indexes``: where staging creates a tenant's index (a store without them reads,
        promotes and keeps evidence, but cannot stage)."""
        self.indexes = indexes
        self.client = client
        self.schema = keys
        self.max_rules = max_rules
        self._stage = self.client.register_script(scripts.STAGE)
        self._promote = self.client.register_script(scripts.PROMOTE)
        self._discard = self.client.register_script(scripts.DISCARD)
        self._settle = self.client.register_script(scripts.SETTLE)
        self._evidence = self.client.register_script(scripts.EVIDENCE)

    @classmethod
    def on(cls, indexes: RuleIndexes, *, max_rules: int = MAX_CHANGE_SET_RULES) -> ChangeSetStore:
        """The store of the indexes' key layout, able to stage."""
        return cls(indexes.client, indexes.schema, indexes=indexes, max_rules=max_rules)

    async def info(self, tenant: str, name: str) -> ChangeSetInfo | None:
        raw = await self.client.hgetall(self.schema.change_set_key(tenant, name))
        if not raw:
            return None
        record = {as_text(k): as_text(v) for k, v in raw.items()}
        members = await self.client.hlen(self.schema.change_set_key(tenant, name, "members"))
        return ChangeSetInfo(name, record["state"], int(record.get("revision", 0)),
                             record.get("created_at", ""), record.get("closed_at"), members,
                             record.get("evidence"))  # fmt: skip

    async def names(self, tenant: str) -> list[str]:
        return sorted(as_text(n) for n in await self.client.smembers(
            self.schema.change_sets_key(tenant)))  # fmt: skip

    async def members(self, tenant: str, name: str) -> dict[str, int]:
        """``rule_id`` -> staged version (negative: a staged delete)."""
        raw = await self.client.hgetall(self.schema.change_set_key(tenant, name, "members"))
        return {as_text(k): int(v) for k, v in raw.items()}

    async def changes(self, tenant: str, name: str) -> list[RuleUpsert | RuleDelete]:
        """The staged events, in rule id order."""
        raw = await self.client.hgetall(self.schema.change_set_key(tenant, name, "changes"))
        decoded = {as_text(k): CHANGE.validate_json(v) for k, v in raw.items()}
        return [decoded[rule_id] for rule_id in sorted(decoded)]

    async def record_evidence(self, tenant: str, name: str, revision: int, evidence: str) -> bool:
        """Keep an exam's result on the set when the set is still at ``revision`` (the one the
        exam graded); False when it moved on (the result no longer describes it)."""
        key = self.schema.change_set_key(tenant, name)
        return bool(await self._evidence(keys=[key], args=[revision, evidence]))

    async def stage(
        self, staged: Sequence[ChangeSetStage], vectors: Sequence[bytes | None]
    ) -> list[IndexOutcome]:
        """Stage each change (``vectors``: each upsert's embedding, in order): APPLIED, STALE
        (the set or the live memory has this version or a newer one) or REFUSED (the set is
        closed or full)."""
        if self.indexes is None:
            raise RuntimeError("this change-set store was opened without indexes: it cannot stage")
        for tenant in {s.tenant for s in staged}:
            await self.indexes.ensure(tenant)
        await preload_scripts(self.client, self._stage)
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (scripts are atomic)
        for event, vector in zip(staged, vectors, strict=True):
            tenant, rule_id, version = event.target
            change = event.change
            args: list[str | int | bytes] = [
                event.name, rule_id, version, "u" if isinstance(change, RuleUpsert) else "d",
                change.model_dump_json(), _now(), self.max_rules,
            ]  # fmt: skip
            if isinstance(change, RuleUpsert):
                assert vector is not None, "an upsert is staged with its embedding"
                fields = candidate_fields(change.rule, vector, event.name)
                for name, value in fields.items():
                    args.extend((name, value))
            await self._stage(keys=self._stage_keys(event), args=args, client=pipe)
        codes = await pipe.execute()
        return [_STAGE_CODES.get(int(code), IndexOutcome.REFUSED) for code in codes]

    def _stage_keys(self, event: ChangeSetStage) -> list[str]:
        tenant, rule_id, _ = event.target
        record = self.schema.change_set_key
        return [record(tenant, event.name), record(tenant, event.name, "members"),
                record(tenant, event.name, "changes"), self.schema.change_sets_key(tenant),
                self.schema.shadow_key(tenant), self.schema.versions_key(tenant),
                self.schema.doc_key(tenant, rule_id),
                self.schema.candidate_key(tenant, event.name, rule_id)]  # fmt: skip

    def _member_keys(self, tenant: str, name: str, rule_ids: Sequence[str]) -> list[str]:
        keys: list[str] = []
        for rule_id in rule_ids:
            keys += [self.schema.doc_key(tenant, rule_id),
                     self.schema.candidate_key(tenant, name, rule_id)]  # fmt: skip
        return keys

    async def promote(self, event: ChangeSetPromote) -> PromoteResult:
        """Switch the set live (the ledger and the settling sets, in one script; nothing else
        is written). Another set of the tenant still settling is settled first."""
        tenant, name = event.tenant, event.name
        rule_ids = sorted(await self.members(tenant, name))
        record = self.schema.change_set_key
        keys = [record(tenant, name), record(tenant, name, "members"),
                self.schema.versions_key(tenant), self.schema.settling_key(tenant)]  # fmt: skip
        args: list[str | int] = [name, event.revision, _now(), *rule_ids]
        reply = await self._promote(keys=keys, args=args)
        while int(reply[0]) == -5:
            await self.settle_all(tenant)
            reply = await self._promote(keys=keys, args=args)
        code = int(reply[0])
        if code == -4:
            conflicts = tuple(as_text(r) for r in reply[1:])
            return PromoteResult(IndexOutcome.REFUSED, "live versions at or above staged ones",
                                 conflicts)  # fmt: skip
        if code < 0:
            return PromoteResult(IndexOutcome.REFUSED, _PROMOTE_REASONS.get(code, str(code)))
        outcome = IndexOutcome.APPLIED if code == 1 else IndexOutcome.STALE
        changes = tuple(await self.changes(tenant, name))
        return PromoteResult(outcome, changes=changes, tenant=tenant, name=name)

    async def settle(self, tenant: str, name: str, *, chunk: int = 64) -> int:
        """Move a promoted set's staged documents into place, a chunk of rules per script
        (Redis serves searches between chunks; each rule moves atomically), then end its
        settling; how many documents moved. Idempotent: a redelivered promote settles again,
        and a set no longer settling is left alone."""
        settling = self.schema.settling_key(tenant)
        if not await self.client.hexists(settling, name):
            return 0
        rule_ids = sorted(await self.members(tenant, name))
        shared = [self.schema.change_set_key(tenant, name, "members"),
                  self.schema.shadow_key(tenant), self.schema.versions_key(tenant)]  # fmt: skip
        moved = 0
        for start in range(0, len(rule_ids), chunk):
            ids = rule_ids[start : start + chunk]
            keys = [*shared, *self._member_keys(tenant, name, ids)]
            moved += int(await self._settle(keys=keys, args=[name, *ids]))
        await self.client.hdel(settling, name)
        return moved

    async def settle_all(self, tenant: str) -> int:
        """Settle every set of the tenant still settling (a promote left unfinished)."""
        return sum([await self.settle(tenant, name)
                    for name in await settling_sets(self.client, self.schema, tenant)])  # fmt: skip

    async def discard(self, event: ChangeSetDiscard) -> IndexOutcome:
        tenant, name = event.tenant, event.name
        record = self.schema.change_set_key
        for _ in range(3):  # a stage that lands between the read and the script: read again
            rule_ids = sorted(await self.members(tenant, name))
            keys = [record(tenant, name), record(tenant, name, "members"),
                    record(tenant, name, "changes"), self.schema.shadow_key(tenant),
                    *self._member_keys(tenant, name, rule_ids)]  # fmt: skip
            code = int(await self._discard(keys=keys, args=[name, _now(), *rule_ids]))
            if code != -3:
                break
        return {1: IndexOutcome.APPLIED, 2: IndexOutcome.STALE}.get(code, IndexOutcome.REFUSED)
