"""One key builder: every key of a tenant carries its hash tag, so on Redis Cluster a tenant's
keys (and so its scripts and transactions) share one slot, and no tenant's keys are a prefix of
another's."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from services.grading.job_keys import JobKeys
from shared.memory.keys import RuleKeys, hash_tag


def tenant_keys(keys: RuleKeys, tenant: str) -> list[str]:
    exams = JobKeys(keys.prefix, "exam")
    return [
        keys.doc_key(tenant, "refunds"), keys.candidate_key(tenant, "q3", "refunds"),
        keys.versions_key(tenant), keys.history_key(tenant, "refunds"),
        keys.jurisdictions_key(tenant), keys.shadow_key(tenant), keys.settling_key(tenant),
        keys.change_set_key(tenant, "q3"), keys.change_set_key(tenant, "q3", "members"),
        keys.change_sets_key(tenant), keys.audit_head_key(tenant),
        keys.prompt_set_key(tenant, "default"), exams.part(f"{tenant}:job-1", "meta"),
        exams.active(f"{tenant}:job-1"), exams.jobs(tenant), keys.index_name(tenant),
    ]  # fmt: skip


def test_every_key_of_a_tenant_is_in_its_slot() -> None:
    keys = RuleKeys("alignstream")
    for tenant in ("acme", "globex", "a-b_c", "x"):
        slots = {key_slot(k.encode()) for k in tenant_keys(keys, tenant)}
        assert slots == {key_slot(hash_tag(tenant).encode())}
    # Different tenants, different places (these four land on four slots).
    assert (
        len({key_slot(hash_tag(t).encode()) for t in ("acme", "globex", "initech", "umbrella")})
        == 4
    )


def test_no_tenant_reaches_into_another() -> None:
    keys = RuleKeys("p")
    assert not keys.doc_prefix("acme2").startswith(keys.doc_prefix("acme"))
    assert not keys.index_name("acme2").startswith(keys.index_name("acme"))
    assert keys.tenant_of_index(keys.index_name("acme")) == "acme"
    assert keys.is_candidate_key(keys.candidate_key("acme", "q3", "r"))
    assert not keys.is_candidate_key(keys.doc_key("acme", "r"))


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="braces"):
        RuleKeys("a{b}")
