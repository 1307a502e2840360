"""Every Redis key of a deployment, built in one place: ``RuleKeys(prefix)`` maps a tenant to
its keys, key prefixes and index name. It needs no embedder (``RuleSchema`` adds the index
definition on top).

Every key of a tenant carries the tenant's hash tag (``{acme}``), so on Redis Cluster a tenant
lives in one slot: every Lua script and transaction over its keys stays on one shard, and its
search index (created on the shard that owns the slot) sees all its documents. On a single
Redis the braces are just characters. Tenant ids cannot contain braces or ``:``
(``TenantId``), so no tenant's tag or prefix is a prefix of another's.

The few keys of no tenant (schema meta, memory watermark, API keys) are single-key records or
sets of their own; no script combines them with a tenant's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

CANDIDATE_MARK = "@"
"""Starts the part of a document key after the tenant's prefix when the document is staged."""

LAYOUT_VERSION = 5
"""Bump when a key's name changes, with a move of the old names in ``layout.py`` (run at
start-up). 5: hash tags."""


def hash_tag(tenant: str) -> str:
    """The part of a key that places it: every key of ``tenant`` hashes to this slot."""
    return "{" + tenant + "}"


def tenant_of_tag(text: str) -> str | None:
    """The tenant of a ``{tenant}`` tag (None if ``text`` is not one)."""
    if len(text) > 2 and text[0] == "{" and text[-1] == "}":
        return text[1:-1]
    return None


@dataclass(frozen=True, slots=True)
class RuleKeys:
    """The key layout of one deployment prefix."""

    prefix: str

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:  # it would take the place of the tenant's tag
            raise ValueError(f"a Redis key prefix cannot contain braces: {self.prefix!r}")

    def tenant(self, tenant: str, kind: str) -> str:
        """The base of the tenant's keys of one kind (``{prefix}:{kind}:{tenant}``)."""
        return f"{self.prefix}:{kind}:{hash_tag(tenant)}"

    # -- the rule memory --------------------------------------------------------------------

    @property
    def index_prefix(self) -> str:
        return f"{self.prefix}:idx:rules:"

    def index_name(self, tenant: str) -> str:
        """The name searches use: an alias of the tenant's current index (``physical_index``),
        moved to a new one built beside it on an upgrade. The tag in it routes FT.* to the
        tenant's shard."""
        return f"{self.index_prefix}{hash_tag(tenant)}"

    def physical_index(self, tenant: str, fingerprint: str) -> str:
        """The tenant's index of one schema version (``RuleSchema.fingerprint``)."""
        return f"{self.index_name(tenant)}:{fingerprint}"

    def tenant_of_index(self, index: str) -> str | None:
        """The tenant of an index of this prefix, by its alias or its physical name."""
        if not index.startswith(self.index_prefix):
            return None
        tag, _, _ = index.removeprefix(self.index_prefix).partition(":")
        return tenant_of_tag(tag)

    @property
    def docs_pattern(self) -> str:
        """Glob of every rule document of every tenant."""
        return f"{self.prefix}:rule:*"

    def doc_prefix(self, tenant: str) -> str:
        return f"{self.tenant(tenant, 'rule')}:"

    def doc_key(self, tenant: str, rule_id: str) -> str:
        return f"{self.doc_prefix(tenant)}{rule_id}"

    def staged_prefix(self, tenant: str) -> str:
        """Where the tenant's staged documents are: inside its index's prefix (a candidate
        search ranks them against the live rules with the same statistics), under names no rule
        id can have (``@`` never starts one)."""
        return f"{self.doc_prefix(tenant)}{CANDIDATE_MARK}"

    def candidate_key(self, tenant: str, change_set: str, rule_id: str) -> str:
        """A staged version's document."""
        return f"{self.staged_prefix(tenant)}{change_set}/{rule_id}"

    def is_candidate_key(self, key: str) -> bool:
        """Whether a document key (``docs_pattern``) is a staged version's."""
        tenant_and_rest = key.removeprefix(f"{self.prefix}:rule:")
        return tenant_and_rest.partition(":")[2].startswith(CANDIDATE_MARK)

    @property
    def meta_key(self) -> str:
        """Fingerprint of the schema the tenant indexes were created with."""
        return f"{self.prefix}:meta:rules-index"

    def versions_key(self, tenant: str) -> str:
        return self.tenant(tenant, "ruleversions")

    def applied_by_key(self, tenant: str) -> str:
        """Which event applied each rule's ledger version (``rule_id`` -> event id): another
        copy of that event (the other lane, another ingest instance) is confirmed applied, not
        stale, whichever copy wrote it."""
        return self.tenant(tenant, "appliedby")

    def history_key(self, tenant: str, rule_id: str) -> str:
        """Every version of a rule (``shared/memory/history.py``)."""
        return f"{self.tenant(tenant, 'history')}:{rule_id}"

    def jurisdictions_key(self, tenant: str) -> str:
        """The tenant's jurisdiction tree (``shared/memory/trees.py``)."""
        return self.tenant(tenant, "jurisdictions")

    def shadow_key(self, tenant: str) -> str:
        """Which open change sets stage a version of each rule (``rule_id`` -> ``a|b``): the
        live document's ``shadow`` field, kept here so that a live write keeps it."""
        return self.tenant(tenant, "shadow")

    def settling_key(self, tenant: str) -> str:
        """The tenant's promoted change sets whose documents are not all in place yet (name ->
        promote time): every search reads it (``shared/memory/settling.py``)."""
        return self.tenant(tenant, "settling")

    def change_set_key(self, tenant: str, name: str, part: str = "") -> str:
        """A change set's record (``part`` empty), its ``members`` (``rule_id`` -> version,
        negative for a delete) or its staged ``changes`` (``rule_id`` -> event JSON)."""
        return f"{self.tenant(tenant, 'changeset')}:{name}" + (f":{part}" if part else "")

    def change_sets_key(self, tenant: str) -> str:
        """The names of the tenant's change sets."""
        return self.tenant(tenant, "changesets")

    # -- other per-tenant records -----------------------------------------------------------

    def audit_head_key(self, tenant: str) -> str:
        """The head of the tenant's audit chain (``services/ingest/audit_chainer.py``)."""
        return self.tenant(tenant, "audit:head")

    def prompt_set_key(self, tenant: str, name: str) -> str:
        return f"{self.tenant(tenant, 'prompt_set')}:{name}"

    def job_key(self, kind: str, tenant: str, job_id: str, part: str) -> str:
        """A part of a job's record (``kind``: ``exam``, ``research``)."""
        return f"{self.tenant(tenant, kind)}:{job_id}:{part}"

    def jobs_key(self, kind: str, tenant: str) -> str:
        """The tenant's jobs of a kind, by start time."""
        return f"{self.tenant(tenant, kind)}:jobs"

    def active_jobs_key(self, kind: str, tenant: str) -> str:
        """The tenant's unfinished jobs of a kind (moved in the same transaction as the job)."""
        return f"{self.tenant(tenant, kind)}:active"

    @property
    def api_keys_prefix(self) -> str:
        """Where API key records are (``shared/tenants.py``): under one tag of their own, so
        that their index sees them all on a cluster."""
        return f"{self.prefix}:{{apikeys}}"

    def job_tenants_key(self, kind: str) -> str:
        """Every tenant that ever had a job of a kind: where a restart looks for active jobs
        (a set of no tenant, only ever added to, so it needs no transaction with a job)."""
        return f"{self.prefix}:{kind}:tenants"

    # -- gateway instances ------------------------------------------------------------------

    @property
    def reply_topics_key(self) -> str:
        """The reply topics gateway instances created (a set of no tenant): the only topics a
        sweep may delete, so a client's own ``replies.<name>`` topic is never touched."""
        return f"{self.prefix}:gateway:reply-topics"

    def reply_topic_lease_key(self, topic: str) -> str:
        """Present (with a TTL its gateway keeps renewing) while the topic's instance runs."""
        return f"{self.prefix}:gateway:lease:{topic}"
