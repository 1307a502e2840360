"""The audit hash chain: an intact chain verifies; a removed, altered, reordered or replaced
record is reported; an exact repeat (a retried append) is counted, not reported."""

from __future__ import annotations

from datetime import UTC, datetime

from shared import events
from shared.audit_chain import GENESIS, canonical, link, link_hash, verify


def entry(request_id: str, tenant: str = "acme") -> events.AuditEntry:
    return events.AuditEntry(tenant=tenant, request_id=request_id, question_sha256="0" * 64,
                             strategy=events.Strategy.OPO, outcome="ok",
                             answered_at=datetime(2026, 12, 7, tzinfo=UTC))  # fmt: skip


def chain(n: int, tenant: str = "acme") -> list[events.AuditLink]:
    links, prev = [], GENESIS
    for seq in range(1, n + 1):
        links.append(link(entry(f"r{seq}", tenant), seq, prev))
        prev = links[-1].hash
    return links


def test_an_intact_chain_of_each_tenant_verifies() -> None:
    report = verify([*chain(5), *chain(3, "beta")])
    assert report.ok
    assert report.tenants == {"acme": 5, "beta": 3}
    assert report.links == 8


def test_the_hash_covers_the_entry_canonically() -> None:
    first = entry("r1")
    stored = events.AuditEntry.model_validate_json(first.model_dump_json(indent=2))
    assert link_hash(GENESIS, first) == link_hash(GENESIS, stored)  # however it was stored
    assert link_hash(GENESIS, first) != link_hash("1" * 64, first)
    assert b'"request_id":"r1"' in canonical(first)


def test_a_removed_record_is_reported() -> None:
    links = chain(5)
    del links[2]
    report = verify(links)
    assert report.problems == ["acme: record 3 is missing (removed)"]


def test_an_altered_record_is_reported() -> None:
    links = chain(4)
    altered = links[1].entry.model_copy(update={"outcome": "timeout"})
    links[1] = links[1].model_copy(update={"entry": altered})
    assert verify(links).problems == ["acme: record 2 (r2) was altered"]


def test_a_reordered_or_replaced_record_is_reported() -> None:
    links = chain(4)
    # Moved: r3's entry re-linked at position 2 with a hash that matches its new content.
    moved = link(links[2].entry, 2, links[0].hash)
    swapped = [links[0], moved, link(links[1].entry, 3, moved.hash), links[3]]
    assert verify(swapped).problems == ["acme: record 4 does not follow record 3 (reordered or "
                                        "replaced)"]  # fmt: skip
    forged = link(entry("fake"), 3, "f" * 64)
    assert "record 3 does not follow record 2" in verify([*links[:2], forged, links[3]]).problems[0]


def test_a_repeated_append_is_counted_and_a_fork_is_reported() -> None:
    links = chain(3)
    report = verify([*links, links[1]])
    assert report.ok
    assert report.repeats == 1
    fork = link(entry("other"), 2, links[0].hash)
    assert "record 2 appears with different contents" in verify([*links, fork]).problems[0]


def test_a_fragment_verifies_from_its_first_record_when_partial() -> None:
    fragment = chain(6)[3:]
    assert not verify(fragment).ok  # records 1-3 are not there
    assert verify(fragment, partial=True).ok
