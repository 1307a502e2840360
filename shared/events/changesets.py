"""Change sets: candidate rule versions staged under a name, invisible to live traffic, graded
by exams against the live memory, then promoted for the tenant at once or discarded.

All three travel on the rule log. A staged change is keyed by the change set and the rule (so it
never replaces the rule's live record when the log is compacted); the promote and the discard
are keyed by the change set. Every record of one change set goes to one partition
(``changeset_key``), so a replay meets a set's stages before its promote."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.events.base import Event, Identifier, TenantId
from shared.events.rules import Publisher, RuleDelete, RuleOp, RuleTarget, RuleUpsert

ChangeSetName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
]
"""A change set's name within its tenant: ``q3-returns``, ``eu.privacy-2027`` (lower case: it
is a search tag, and tags are case-folded)."""

MAX_CHANGE_SET_RULES = 10_000
"""Most rules one change set may stage: promote applies them all in one Redis script."""


def changeset_key(tenant: str, name: str) -> str:
    """Kafka key of a change set's promote and discard, and the partition key of its stages;
    ``@`` never starts a rule id."""
    return f"{tenant}:@changeset:{name}"


class ChangeSetStage(Event):
    """A candidate version of one rule (an upsert or a delete) in change set ``name``: stored
    and searchable by requests that name the set, never by live traffic."""

    kind: Literal["changeset.stage"] = "changeset.stage"
    name: ChangeSetName
    change: Annotated[RuleUpsert | RuleDelete, Field(discriminator="kind")]

    @property
    def tenant(self) -> str:
        return self.change.target.tenant

    @property
    def key(self) -> str:
        return f"{changeset_key(self.tenant, self.name)}/{self.change.target.rule_id}"

    @property
    def partition_key(self) -> str:
        return changeset_key(self.tenant, self.name)

    @property
    def target(self) -> RuleTarget:
        return self.change.target

    @property
    def op(self) -> RuleOp:
        return "stage"


class _WholeSet(Event):
    """An event about a whole change set, keyed by it."""

    tenant: TenantId
    name: ChangeSetName
    publisher: Publisher | None = None

    @property
    def key(self) -> str:
        return changeset_key(self.tenant, self.name)

    @property
    def partition_key(self) -> str:
        return self.key


class ChangeSetPromote(_WholeSet):
    """Make every staged version of change set ``name`` live for the tenant, at once; refused
    (nothing changes) when the set changed since ``revision`` (what its exam graded) or when a
    live version is at or above a staged one."""

    kind: Literal["changeset.promote"] = "changeset.promote"
    revision: int = Field(ge=1)
    """The set's revision this promote was decided on (each stage raises it by one)."""
    gate: Annotated[str, StringConstraints(max_length=500)] | None = None
    """The conditions the promote was checked against (``accuracy_delta >= -1pp``), as given."""
    exam_job: Identifier | None = None
    """The exam whose result passed the gate."""

    @property
    def target(self) -> RuleTarget:
        return RuleTarget(self.tenant, self.name, self.revision)

    @property
    def op(self) -> RuleOp:
        return "promote"


class ChangeSetDiscard(_WholeSet):
    """Drop change set ``name``: its candidate versions are deleted, live rules untouched."""

    kind: Literal["changeset.discard"] = "changeset.discard"

    @property
    def target(self) -> RuleTarget:
        return RuleTarget(self.tenant, self.name, 1)

    @property
    def op(self) -> RuleOp:
        return "discard"


ChangeSetEvent = ChangeSetStage | ChangeSetPromote | ChangeSetDiscard
"""What the rule log carries about change sets."""
