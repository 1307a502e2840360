"""Change sets without Redis: their events' keys and partitions, the exam evidence a set keeps,
the gate a promote checks, and the replay of recorded requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.cli.changesets import _where_texts_differ
from shared import events
from shared.changeset_gate import ExamEvidence, Gate, GateError, evidence_of
from shared.changeset_replay import parse_window, replay, scope_of
from shared.errors import Hinted
from shared.events import CategoryScore, PairedComparison, Strategy, StrategyScore
from shared.memory.schema import STAGED, RuleSchema, candidate_fields
from tests.samples import sample_rule


def stage(rule_id: str = "returns") -> events.ChangeSetStage:
    return events.ChangeSetStage(
        name="q3", change=events.RuleUpsert(rule=sample_rule(rule_id=rule_id, version=2))
    )


def test_a_set_s_records_never_take_a_rule_s_key_and_share_one_partition_key() -> None:
    staged = stage()
    assert staged.key == "acme:@changeset:q3/returns"
    assert staged.key != staged.change.key  # compaction never drops the live record
    promote = events.ChangeSetPromote(tenant="acme", name="q3", revision=3)
    discard = events.ChangeSetDiscard(tenant="acme", name="q3")
    assert staged.partition_key == promote.partition_key == discard.partition_key == promote.key
    assert (staged.target, staged.op) == (events.RuleTarget("acme", "returns", 2), "stage")
    assert (promote.target, promote.op) == (events.RuleTarget("acme", "q3", 3), "promote")
    decoded = events.RULES_TOPIC_EVENT.validate_json(events.encode(staged))
    assert decoded == staged


@pytest.mark.parametrize("name", ["Q3", "", "-q3", "q 3", "q3/x", "a" * 65, "q3|x"])
def test_a_change_set_name_is_a_lower_case_tag(name: str) -> None:
    with pytest.raises(ValidationError):
        events.ChangeSetDiscard(tenant="acme", name=name)


def test_the_candidate_strategy_and_a_candidate_set_go_together() -> None:
    with pytest.raises(ValidationError, match="go together"):
        events.ExamJob(tenant="t", dataset="x.jsonl", strategies=(Strategy.CANDIDATE,))
    with pytest.raises(ValidationError, match="go together"):
        events.ExamJob(tenant="t", dataset="x.jsonl", candidate="q3")
    job = events.ExamJob(tenant="t", dataset="x.jsonl", candidate="q3", candidate_revision=2,
                         strategies=(Strategy.OPO, Strategy.CANDIDATE))  # fmt: skip
    assert job.candidate == "q3"


def test_a_staged_document_hides_its_status_from_live_searches() -> None:
    schema = RuleSchema("p", 4, "m")
    rule = sample_rule(status=events.RuleStatus.PENDING)
    fields = candidate_fields(rule, b"v", "q3")
    assert (fields["status"], fields["stage"], fields["staged_status"]) == (STAGED, "q3", "pending")
    key = schema.candidate_key("acme", "q3", "returns")
    assert key.startswith(schema.doc_prefix("acme"))  # in the tenant's index
    assert schema.is_candidate_key(key)
    assert not schema.is_candidate_key(schema.doc_key("acme", "returns"))


def result(live: tuple[int, int], candidate: tuple[int, int], pairs: int) -> events.ExamResult:
    def score(strategy: Strategy, by_category: tuple[int, int]) -> StrategyScore:
        cats = tuple(CategoryScore(category=c, answered=10, correct=n, accuracy=n / 10)
                     for c, n in zip(("a", "b"), by_category, strict=True))  # fmt: skip
        correct = sum(by_category)
        return StrategyScore(strategy=strategy, answered=20, correct=correct,
                             accuracy=correct / 20, categories=cats)  # fmt: skip

    return events.ExamResult(
        job_id="j1", tenant="t", dataset="x", total_questions=20,
        scores=(score(Strategy.OPO, live), score(Strategy.CANDIDATE, candidate)),
        comparisons=(PairedComparison(baseline=Strategy.OPO, treatment=Strategy.CANDIDATE,
                                      pairs=pairs, delta=0.05, treatment_only=3,
                                      baseline_only=2, p_value=1.0),),
    )  # fmt: skip


def test_evidence_pairs_live_and_candidate_per_category() -> None:
    evidence = evidence_of(result(live=(8, 5), candidate=(6, 8), pairs=20), revision=4)
    assert evidence is not None
    assert (evidence.revision, evidence.pairs, evidence.accuracy_delta) == (4, 20, 0.05)
    assert (evidence.live_accuracy, evidence.candidate_accuracy) == (0.65, 0.7)
    assert [(c.category, c.delta) for c in evidence.categories] == [("a", -0.2), ("b", 0.3)]
    assert evidence.worst_category_delta == -0.2
    assert evidence_of(result((8, 5), (6, 8), pairs=0), revision=4) is None


@pytest.mark.parametrize(
    ("gate", "holds"),
    [
        ("accuracy_delta >= -1pp", [True]),
        ("accuracy_delta >= 5pp", [True]),  # 0.05 exactly: the boundary holds
        ("accuracy_delta > 5pp", [False]),
        ("accuracy_delta >= 0.06", [False]),
        ("accuracy_delta >= -1pp and worst_category_delta >= -10%", [True, False]),
        ("p_value < 0.05, pairs >= 20", [False, True]),
        ("candidate_accuracy==70% and live_accuracy <= 0.65", [True, True]),
    ],
)
def test_a_gate_checks_every_condition(gate: str, holds: list[bool]) -> None:
    evidence = evidence_of(result(live=(8, 5), candidate=(6, 8), pairs=20), revision=1)
    assert evidence is not None
    assert [ok for _, _, ok in Gate.parse(gate).check(evidence)] == holds


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("", "the gate is empty"),
        ("accuracy >= 1", "unknown metric 'accuracy'"),
        ("accuracy_delta => 1", "cannot read the condition"),
        ("accuracy_delta >= 1pp or p_value < 1", "cannot read the condition"),
        ("accuracy_delta >= 1pp; drop", "cannot read the condition"),
        ("x" * 501, "longer than 500"),
    ],
)
def test_a_gate_that_cannot_be_read_says_why(gate: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        Gate.parse(gate)


def entry(i: int, question: str = "q?", strategy: Strategy = Strategy.OPO) -> events.AuditEntry:
    return events.AuditEntry(
        tenant="t", request_id=f"r{i}", question=question, question_sha256="0" * 64,
        strategy=strategy, outcome="ok", answered_at=datetime(2026, 12, i, tzinfo=UTC),
        searched_scope=events.SearchedScope(source="question", nodes=("CN/山东",),
                                            searched=("global", "CN", "CN/山东")),
    )  # fmt: skip


async def test_a_replay_counts_requests_the_set_would_ground_differently() -> None:
    asked: list[events.RuleScope] = []

    async def grounding(e: events.AuditEntry, scope: events.RuleScope) -> tuple[str, ...]:
        asked.append(scope)
        changed = scope.change_set is not None and e.request_id in ("r2", "r3")
        return ("returns@2",) if changed else ("returns@1",)

    recorded = [entry(1), entry(2), entry(3), entry(4, question=""),
                entry(5, strategy=Strategy.BASE), entry(9)]  # fmt: skip
    until = datetime(2026, 12, 6, tzinfo=UTC)
    report = await replay(recorded, "q3", grounding, until=until, examples=1)
    assert (report.replayed, report.changed, report.hashed_only, report.not_searching) == (
        3,
        2,
        1,
        1,
    )
    assert report.gained == {"returns@2": 2}
    assert report.lost == {"returns@1": 2}
    assert report.examples == [("r2", ("returns@1",), ("returns@2",))]
    assert asked[0] == events.RuleScope(
        jurisdictions=("CN/山东",), as_of=until.date().replace(day=1)
    )
    assert [s.change_set for s in asked[:2]] == [None, "q3"]


def test_a_replay_window_and_an_unsearched_scope() -> None:
    since, until = parse_window("2026-12-01..")
    assert (since, until) == (datetime(2026, 12, 1, tzinfo=UTC), None)
    assert parse_window("..2026-12-02T10:00+00:00")[1] == datetime(2026, 12, 2, 10, tzinfo=UTC)
    for bad in ("2026-12-01", "yesterday..today"):
        with pytest.raises(Hinted):
            parse_window(bad)
    anywhere = entry(1).model_copy(update={"searched_scope": events.SearchedScope(source="any")})
    assert scope_of(anywhere, "q3").any_jurisdiction
    assert scope_of(anywhere, "q3").change_set == "q3"


def test_a_diff_shows_both_texts_from_where_they_differ() -> None:
    old = "Customers may return any product they bought within 14 days of delivery."
    new = "Customers may return any product they bought within 30 days of delivery."
    before, after = _where_texts_differ(old, new, width=30)
    assert "14 days" in before
    assert "30 days" in after
    assert before.startswith("…")
    assert _where_texts_differ("", "New rule.") == ("", "New rule.")


def test_evidence_round_trips_as_the_set_keeps_it() -> None:
    evidence = evidence_of(result(live=(8, 5), candidate=(6, 8), pairs=20), revision=4)
    assert evidence is not None
    assert ExamEvidence.model_validate_json(evidence.model_dump_json()) == evidence
