"""Rule events: what the rules topic carries (upserts, deletes, jurisdiction trees) and ingest's
confirmations. The topic is compacted and keyed ``tenant:rule_id``: the newest event of each rule
is the rule's state, and Redis is rebuilt by replaying it."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple

from pydantic import Field, StringConstraints, TypeAdapter, model_validator

from shared.events.base import Contract, Event, Identifier, Label, TenantId, utcnow

MAX_RULE_TEXT_CHARS = 8000
"""Longest rule text accepted. Rule files with a longer text are rejected with the line (split
it into several rules, one per article or section); nothing splits a rule silently, since a
later update or delete would leave its parts behind."""
MAX_RULE_VERSION = 2**53 - 1
"""Versions are compared as doubles in Redis (Lua numbers and sorted-set scores): above this
they would round, and an event with a huge version could freeze a rule for good."""
RuleVersion = Annotated[int, Field(ge=1, le=MAX_RULE_VERSION)]

GLOBAL_JURISDICTION = "global"
"""Jurisdiction of rules that apply everywhere (OPO's 全国 / national law)."""

TREE_RULE_ID = "jurisdictions"
"""``rule_id`` of the confirmation of a jurisdiction tree."""

RuleOp = Literal["upsert", "delete", "tree", "stage", "promote", "discard"]
"""What a rules-topic event does (``tree``: a tenant's jurisdiction tree; ``stage``,
``promote``, ``discard``: a change set's, ``shared/events/changesets.py``)."""


class RuleTarget(NamedTuple):
    """What a rules-topic event is about: which rule of which tenant, and at which version."""

    tenant: str
    rule_id: str
    version: int

    @property
    def slot(self) -> tuple[str, str]:
        """The rule whatever its version: (tenant, rule id)."""
        return self.tenant, self.rule_id


class RuleDomain(StrEnum):
    LAW = "law"
    MORALITY = "morality"
    POLICY = "policy"
    CONSTITUTION = "constitution"
    OTHER = "other"


class RuleStatus(StrEnum):
    ACTIVE = "active"
    """Retrieved and used for grounding."""
    PENDING = "pending"
    """Stored but not served until an admin activates it (e.g. discovered principles)."""
    INACTIVE = "inactive"
    """Deactivated by an admin (``rules deactivate``): kept, with its history, but not served."""


class Rule(Contract):
    """One rule (a law article, a moral norm, a policy clause, a principle)."""

    tenant: TenantId
    """Owner; a tenant never sees another tenant's rules."""
    rule_id: Identifier
    """Stable id within the tenant."""
    version: RuleVersion
    """Monotonic per (tenant, rule_id); an older version never overwrites a newer one."""
    domain: RuleDomain = RuleDomain.POLICY
    jurisdiction: Label = GLOBAL_JURISDICTION
    """Where the rule applies: ``global`` or a region name (province, state, company, ...)."""
    locale: Label | None = None
    """BCP 47 language tag of the text, e.g. ``zh-CN``; None when unknown."""
    title: Annotated[str, StringConstraints(max_length=512)] = ""
    """Short name, e.g. the law's name and article number."""
    source: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Where the rule comes from (URL, document, discovery job)."""
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_RULE_TEXT_CHARS)]
    priority: int = Field(default=0, ge=0, le=1000)
    """Hierarchy level; higher wins ties in retrieval ordering (constitution > law > policy)."""
    effective_from: date | None = None
    """First day the rule is in force; None means always was."""
    effective_until: date | None = None
    """Last day the rule is in force; None means no end."""
    status: RuleStatus = RuleStatus.ACTIVE
    tags: tuple[Label, ...] = ()

    @model_validator(mode="after")
    def _dates_ordered(self) -> Rule:
        if (
            self.effective_from is not None
            and self.effective_until is not None
            and self.effective_until < self.effective_from
        ):
            raise ValueError("effective_until is before effective_from")
        return self

    @property
    def key(self) -> str:
        return rule_key(self.tenant, self.rule_id)


Publisher = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""Who published a rule event, as the publisher states it (``cli:ops@host``, ``gateway:key
ask_…``, ``discovery:job-1``). Covered by the event's signature when signing is on; a claim,
not an identity, when it is off."""


def rule_key(tenant: str, rule_id: str) -> str:
    """Kafka key of the rule topic: per-rule ordering and compaction."""
    return f"{tenant}:{rule_id}"


class RuleUpsert(Event):
    """Create a rule or replace it with a newer version."""

    kind: Literal["rule.upsert"] = "rule.upsert"
    rule: Rule
    publisher: Publisher | None = None

    @property
    def key(self) -> str:
        return self.rule.key

    @property
    def target(self) -> RuleTarget:
        return RuleTarget(self.rule.tenant, self.rule.rule_id, self.rule.version)

    @property
    def op(self) -> RuleOp:
        return "upsert"


class RuleDelete(Event):
    """Remove a rule from search. The delete is versioned like an upsert: it wins only over
    older versions, so a late, older upsert cannot resurrect the rule."""

    kind: Literal["rule.delete"] = "rule.delete"
    tenant: TenantId
    rule_id: Identifier
    version: RuleVersion
    publisher: Publisher | None = None

    @property
    def key(self) -> str:
        return rule_key(self.tenant, self.rule_id)

    @property
    def target(self) -> RuleTarget:
        return RuleTarget(self.tenant, self.rule_id, self.version)

    @property
    def op(self) -> RuleOp:
        return "delete"


RuleEvent = RuleUpsert | RuleDelete
"""A change to one rule."""

MAX_JURISDICTION_DEPTH = 8
MAX_JURISDICTION_NODES = 20_000

JurisdictionPath = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=255,
        strip_whitespace=True,
        pattern=r"^[^/|\s][^/|]*(/[^/|\s][^/|]*)*$",
    ),
]
"""A node of a jurisdiction tree, from the root: ``CN/山东/济南``, ``US/CA``, ``acme/eu-sales``.
A rule filed under a node applies there and in every node below it."""


def ancestors_or_self(path: str) -> tuple[str, ...]:
    """``CN/山东/济南`` -> (``CN``, ``CN/山东``, ``CN/山东/济南``)."""
    parts = [p.strip() for p in path.split("/")]
    return tuple("/".join(parts[: i + 1]) for i in range(len(parts)))


class JurisdictionNode(Contract):
    path: JurisdictionPath
    aliases: tuple[Label, ...] = Field(default=(), max_length=16)
    """Other names of the node in questions and exam files (济南市, Shandong, ...). The last
    segment of the path is always a name of the node."""


class JurisdictionTree(Event):
    """A tenant's jurisdiction tree: the nodes its rules are filed under, their names, and the
    scope of a question that names none. Travels on the rules topic (compacted: the newest tree
    of each tenant stays); replaces the tenant's previous tree when its version is higher."""

    kind: Literal["jurisdictions.tree"] = "jurisdictions.tree"
    tenant: TenantId
    version: RuleVersion
    nodes: tuple[JurisdictionNode, ...] = Field(max_length=MAX_JURISDICTION_NODES)
    default_scope: tuple[JurisdictionPath, ...] = Field(default=(), max_length=32)
    """What a question that names no jurisdiction is searched under (besides ``global``)."""
    unplaced: Literal["default", "tree"] = "default"
    """A question whose request and text name no node: ``default`` searches the default scope
    (``global`` only without one); ``tree`` searches every rule of the tenant and says so
    (``SearchedScope.source`` ``tree``), so a local rule is not lost for want of a place."""

    @model_validator(mode="after")
    def _well_formed(self) -> JurisdictionTree:
        paths = [node.path for node in self.nodes]
        folded = [p.casefold() for p in paths]
        if len(set(folded)) != len(folded):
            raise ValueError("a jurisdiction path is declared twice")
        declared = set(folded)
        for path in paths:
            parts = path.split("/")
            if len(parts) > MAX_JURISDICTION_DEPTH:
                raise ValueError(f"{path!r} is deeper than {MAX_JURISDICTION_DEPTH} levels")
            if any(p.strip().casefold() == GLOBAL_JURISDICTION for p in parts):
                raise ValueError(f"{path!r}: '{GLOBAL_JURISDICTION}' is not a node of a tree")
            parent = "/".join(parts[:-1])
            if parent and parent.casefold() not in declared:
                raise ValueError(f"{path!r}: its parent {parent!r} is not declared")
        for path in self.default_scope:
            if path.casefold() not in declared:
                raise ValueError(f"default scope {path!r} is not a declared node")
        return self

    @property
    def key(self) -> str:
        return jurisdictions_key(self.tenant)

    @property
    def target(self) -> RuleTarget:
        return RuleTarget(self.tenant, TREE_RULE_ID, self.version)

    @property
    def op(self) -> RuleOp:
        return "tree"


def jurisdictions_key(tenant: str) -> str:
    """Kafka key of a tenant's tree on the rules topic; ``@`` never starts a rule id."""
    return f"{tenant}:@jurisdictions"


MemoryEvent = RuleUpsert | RuleDelete | JurisdictionTree
"""What the live memory applies: rule changes and trees (the rule log also carries change
sets, ``shared/events/rule_log.py``)."""


class IndexOutcome(StrEnum):
    APPLIED = "applied"
    """The event's version is in the memory, servable: this copy of the event wrote it, or
    another copy of the same event did (the fast lane's and the log's, read by any instance)."""
    STALE = "stale"
    """A newer version, or this version from another event, was already applied; nothing
    changed (replay, out of order)."""
    REFUSED = "refused"
    """A change set's event that cannot apply, and changed nothing: a stage into a set already
    promoted or discarded, a promote of a set that changed since its revision, or one that
    would overwrite a newer live version (``RuleIndexed.conflicts``)."""


class RuleIndexed(Event):
    """Confirmation that a rule event is applied and servable (read-your-writes)."""

    kind: Literal["rule.indexed"] = "rule.indexed"
    tenant: TenantId
    rule_id: Identifier
    version: int
    op: RuleOp
    """``tree``: the tenant's jurisdiction tree (``rule_id`` is ``TREE_RULE_ID``); ``promote``
    and ``discard``: a change set (``rule_id`` is its name, ``version`` its revision)."""
    outcome: IndexOutcome
    change_set: Identifier | None = None
    """The change set a ``stage``, ``promote`` or ``discard`` is about."""
    conflicts: tuple[Identifier, ...] = Field(default=(), max_length=100)
    """A refused promote: the rules whose live version is at or above the staged one (the
    first 100)."""
    source_event_id: str
    """``event_id`` of the rule event this confirms."""
    event_created_at: datetime
    indexed_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return rule_key(self.tenant, self.rule_id)

    @property
    def latency_ms(self) -> float:
        """Time from the rule event's creation to servable."""
        return (self.indexed_at - self.event_created_at).total_seconds() * 1000.0


RULE_EVENT: TypeAdapter[RuleEvent] = TypeAdapter(Annotated[RuleEvent, Field(discriminator="kind")])
