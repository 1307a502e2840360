"""Choosing writes for a batch of rule events (pure)."""

from __future__ import annotations

from shared.events import IndexOutcome, RuleDelete, RuleUpsert
from shared.memory.writer import plan
from tests.samples import sample_rule

APPLIED, STALE = IndexOutcome.APPLIED, IndexOutcome.STALE


def up(rule_id: str, version: int, tenant: str = "acme") -> RuleUpsert:
    return RuleUpsert(rule=sample_rule(tenant=tenant, rule_id=rule_id, version=version))


def test_new_rules_are_written() -> None:
    batch = [up("a", 1), up("b", 1)]
    result = plan(batch, {})
    assert result.outcomes == [APPLIED, APPLIED]
    assert list(result.writes) == [("acme", "a"), ("acme", "b")]


def test_only_the_newest_version_in_a_batch_is_written() -> None:
    batch = [up("a", 1), up("a", 3), up("a", 2)]
    result = plan(batch, {})
    assert result.outcomes == [STALE, APPLIED, STALE]
    assert result.writes[("acme", "a")] is batch[1]
    assert [u.rule.version for u in result.upserts] == [3]


def test_versions_already_applied_are_stale() -> None:
    assert plan([up("a", 2)], {("acme", "a"): 2}).outcomes == [STALE]
    assert plan([up("a", 3)], {("acme", "a"): 2}).outcomes == [APPLIED]


def test_duplicate_of_the_newest_is_written_once() -> None:
    event = up("a", 2)
    chosen = plan([event, event], {})
    assert list(chosen.writes.values()) == [event]
    assert chosen.outcomes == [APPLIED, APPLIED]  # the second: a copy of the write


def test_delete_competes_by_version_and_needs_no_embedding() -> None:
    delete = RuleDelete(tenant="acme", rule_id="a", version=5)
    result = plan([up("a", 4), delete], {})
    assert result.outcomes == [STALE, APPLIED]
    assert result.upserts == []


def test_tenants_do_not_collide() -> None:
    result = plan([up("a", 1, "t1"), up("a", 1, "t2")], {("t1", "a"): 1})
    assert result.outcomes == [STALE, APPLIED]


def test_restore_also_writes_the_applied_version_and_nothing_older() -> None:
    applied = {("acme", "a"): 2}
    assert plan([up("a", 2)], applied, restore=True).outcomes == [APPLIED]
    assert plan([up("a", 1)], applied, restore=True).outcomes == [STALE]
    assert plan([up("a", 2)], applied).outcomes == [STALE]  # not without restore
    assert plan([up("a", 1), up("a", 2)], applied, restore=True).outcomes == [STALE, APPLIED]


def test_versions_compare_by_value_at_any_size() -> None:
    """Versions default to milliseconds since 1970: far beyond small, interned integers."""
    big = 1_796_121_504_378
    assert plan([up("a", big)], {("acme", "a"): big - 1}).outcomes == [APPLIED]
    assert plan([up("a", big)], {("acme", "a"): big + 0}).outcomes == [STALE]
    restored = plan([up("a", big + 0)], {("acme", "a"): int(str(big))}, restore=True)
    assert restored.outcomes == [APPLIED]
    batch = [up("a", int(str(big))), up("a", big - 5)]
    assert plan(batch, {}).outcomes == [APPLIED, STALE]


def test_an_older_version_is_stale_and_restore_still_takes_a_newer_one() -> None:
    assert plan([up("a", 1)], {("acme", "a"): 2}).outcomes == [STALE]
    assert plan([up("a", 1)], {("acme", "a"): 2}, restore=True).outcomes == [STALE]
    assert plan([up("a", 3)], {("acme", "a"): 2}, restore=True).outcomes == [APPLIED]


def test_a_copy_of_the_event_that_applied_a_version_is_applied_without_a_write() -> None:
    """The fast lane's and the log's copies of one edit, read by different ingest instances:
    whichever comes second is told the edit is in, and nothing is written twice."""
    edit = RuleUpsert(rule=sample_rule(rule_id="r", version=3))
    other = RuleUpsert(rule=sample_rule(rule_id="r", version=3, text="Another text."))
    slot = ("acme", "r")
    chosen = plan([edit, other], {slot: 3}, applied_by={slot: edit.event_id})
    assert chosen.writes == {}
    assert chosen.outcomes == [IndexOutcome.APPLIED, IndexOutcome.STALE]
    assert chosen.copies == {edit.event_id}
    # Without the ledger's event ids an equal version is stale, as before.
    assert plan([edit], {slot: 3}).outcomes == [IndexOutcome.STALE]


def test_a_redelivery_in_the_same_batch_is_a_copy_of_the_write() -> None:
    """The same event twice in one batch (a redelivery) is confirmed as it would be in two
    batches: the second is a copy of the event that wrote the version, not stale."""
    newer, older = up("a", 5), up("a", 4)
    again = newer.model_copy()  # decoded again: another object, the same event id
    chosen = plan([newer, older, again], {})
    assert chosen.outcomes == [APPLIED, STALE, APPLIED]
    assert chosen.writes[("acme", "a")] is newer
    assert chosen.copies == {newer.event_id}
    # a different event of the same version is no copy
    rival = up("a", 5)
    assert plan([newer, rival], {}).outcomes == [APPLIED, STALE]
