"""The second lines of defence, exercised on their own (the first line is bypassed on purpose):

- the rule writer's Lua version guard, called without ``plan()`` screening stale versions first,
  in write and in restore mode (``memory rebuild --drop``);
- the exam store: the first answer of an item wins, and only a pending item takes one.
Each runs against the real Redis (the guards are Lua scripts there).
"""

from __future__ import annotations

import numpy as np
import redis.asyncio as aioredis

from services.grading.datasets import ExamQuestion
from services.grading.records import ExamAnswer, item_of, scoped_id
from services.grading.store import ExamStore
from shared import events
from shared.memory.index import RuleIndexes, open_indexes
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter, WriteResult
from shared.redis import command
from shared.settings import RedisSettings
from tests.samples import sample_rule

VECTOR = np.ones(8, dtype=np.float32).tobytes()

WRITTEN, STALE = WriteResult.WRITTEN, WriteResult.STALE


async def writer_for(client: aioredis.Redis, settings: RedisSettings) -> RuleWriter:
    indexes: RuleIndexes = await open_indexes(client, RuleSchema(settings.key_prefix, 8, "test"))
    return RuleWriter(indexes)


def up(version: int, text: str) -> events.RuleUpsert:
    return events.RuleUpsert(
        rule=sample_rule(rule_id="r", version=version, text=text, jurisdiction="EU")
    )


def delete(version: int) -> events.RuleDelete:
    return events.RuleDelete(tenant="acme", rule_id="r", version=version)


async def document(writer: RuleWriter) -> dict[bytes | str, bytes | str]:
    raw = await writer.client.hgetall(writer.schema.doc_key("acme", "r"))
    return {k: v for k, v in raw.items() if k != b"embedding"}


async def test_the_lua_guard_alone_keeps_the_newest_version(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    writer = await writer_for(redis_client, redis_settings)
    vectors = {("acme", "r"): VECTOR}
    first = up(2, "v2")
    assert await writer.write([first], vectors) == [WRITTEN]
    # Older and equal versions change nothing: not the document, not the ledger. A copy of the
    # event that wrote the version (the other lane's, another instance's) is told it is in.
    assert await writer.write([up(1, "v1"), up(2, "v2 again")], vectors) == [STALE, STALE]
    assert await writer.write([first], vectors) == [WriteResult.ALREADY]
    doc = await document(writer)
    assert (doc[b"version"], doc[b"text"]) == (b"2", b"v2")
    assert await writer.applied_versions([("acme", "r")]) == {("acme", "r"): 2}
    # An older delete does not remove the newer rule; a newer one does.
    assert await writer.write([delete(1)], {}) == [STALE]
    assert await document(writer)
    assert await writer.write([delete(3)], {}) == [WRITTEN]
    assert await document(writer) == {}
    # A late upsert older than the delete cannot resurrect the rule.
    assert await writer.write([up(2, "v2 late")], vectors) == [STALE]
    assert await document(writer) == {}
    assert await writer.applied_versions([("acme", "r")]) == {("acme", "r"): 3}
    assert await writer.write([up(4, "v4")], vectors) == [WRITTEN]
    assert (await document(writer))[b"text"] == b"v4"


async def test_a_new_tenants_first_rule_is_written_and_searchable(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    writer = await writer_for(redis_client, redis_settings)
    assert await writer.applied_versions([("acme", "r")]) == {("acme", "r"): 0}
    assert await writer.write([up(1, "v1")], {("acme", "r"): VECTOR}) == [WRITTEN]
    assert await writer.applied_versions([("acme", "r")]) == {("acme", "r"): 1}
    # The tenant's index was created before its first document: the rule is indexed.
    info = await command(redis_client, "FT.INFO", writer.schema.index_name("acme"))
    fields = dict(zip(info[::2], info[1::2], strict=True))
    assert int(fields[b"num_docs"]) == 1
    assert await writer.indexes.tenants() == ["acme"]


async def test_restore_writes_only_the_applied_version_of_a_live_rule(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    writer = await writer_for(redis_client, redis_settings)
    vectors = {("acme", "r"): VECTOR}
    assert await writer.write([up(2, "v2")], vectors) == [WRITTEN]
    await writer.client.delete(writer.schema.doc_key("acme", "r"))  # what --drop does
    # Outside restore mode the applied version is never written again.
    assert await writer.write([up(2, "v2")], vectors) == [STALE]
    assert await document(writer) == {}
    # An older record (compacted in, replayed) is refused; the applied version comes back once.
    assert await writer.write([up(1, "v1")], vectors, restore=True) == [STALE]
    assert await writer.write([up(2, "v2")], vectors, restore=True) == [WRITTEN]
    assert await writer.write([up(2, "v2")], vectors, restore=True) == [STALE]
    assert (await document(writer))[b"text"] == b"v2"
    # A deleted rule stays deleted: neither its old upsert nor its delete rewrites anything.
    assert await writer.write([delete(5)], {}) == [WRITTEN]
    assert await writer.write([up(2, "v2")], vectors, restore=True) == [STALE]
    assert await writer.write([delete(5)], {}, restore=True) == [STALE]
    assert await document(writer) == {}
    # An upsert carrying the delete's version is not the applied operation.
    assert await writer.write([up(5, "forged")], vectors, restore=True) == [STALE]
    assert await document(writer) == {}


def question(qid: str) -> ExamQuestion:
    return ExamQuestion(question_id=qid, stem="Q?", options={"A": "x", "B": "y"}, answer="A")


def answer(qid: str, chosen: str) -> ExamAnswer:
    outcome = events.AnswerOutcome.CORRECT if chosen == "A" else events.AnswerOutcome.WRONG
    return ExamAnswer(question_id=qid, strategy=events.Strategy.BASE, expected="A",
                             chosen=chosen, outcome=outcome)  # fmt: skip


async def test_the_first_answer_of_a_pending_item_wins(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store = ExamStore(redis_client, redis_settings.key_prefix)
    job = events.ExamJob(job_id="j", tenant="acme", dataset="x.csv",
                         strategies=(events.Strategy.BASE,))  # fmt: skip
    assert await store.create(job, "x", [question("q1"), question("q2")])
    sid = scoped_id("acme", "j")
    q1, q2 = item_of(events.Strategy.BASE, "q1"), item_of(events.Strategy.BASE, "q2")
    assert await store.fill(sid, window=1, now=1.0) == [q1]  # q2 stays in todo
    # An item not sent yet takes no answer.
    assert not await store.record(sid, q2, answer("q2", "A"))
    assert await store.record(sid, q1, answer("q1", "B"))
    # A second, different answer to the same item changes nothing.
    assert not await store.record(sid, q1, answer("q1", "A"))
    (stored,) = await store.answers(sid)
    assert (stored.question_id, stored.chosen) == ("q1", "B")
    assert await store.counts(sid) == (1, 0, 1)
    # Another tenant with the same job id has another job.
    other = job.model_copy(update={"tenant": "beta"})
    assert await store.create(other, "x", [question("q1")])
    assert await store.answers(scoped_id("beta", "j")) == []
    assert [r.job.tenant for r in await store.recent("beta")] == ["beta"]


async def test_a_tenant_without_rules_has_no_index_and_finds_nothing(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    writer = await writer_for(redis_client, redis_settings)
    searcher = RuleSearcher(redis_client, writer.schema, ef_runtime=10)
    assert await searcher.search(VECTOR, RuleFilter(tenant="nobody"), k=5) == []
    assert await searcher.known_jurisdictions("nobody") == set()
    await writer.write([up(1, "v1")], {("acme", "r"): VECTOR})
    (found,) = await searcher.search(VECTOR, RuleFilter(tenant="acme"), k=5)
    assert (found.rule_id, found.version) == ("r", 1)
    assert await searcher.known_jurisdictions("acme") == {"eu"}  # normalized as indexed


def mcq_job(job_id: str, tenant: str = "acme") -> events.ExamJob:
    return events.ExamJob(job_id=job_id, tenant=tenant, dataset="x.csv",
                          strategies=(events.Strategy.BASE, events.Strategy.OPO))  # fmt: skip


async def test_the_store_lists_finds_and_moves_items_per_job(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store = ExamStore(redis_client, redis_settings.key_prefix)
    for i in range(12):
        assert await store.create(mcq_job(f"job-{i:02d}"), "x", [question("q1"), question("q2")])
    assert not await store.create(mcq_job("job-00"), "x", [question("q1")])  # exists: resumes
    failed = await store.create_failed(mcq_job("broken"), "no such file")
    assert (failed.status, failed.error, failed.total_questions) == (
        events.JobStatus.FAILED, "no such file", 0)  # fmt: skip
    newest = [r.job.job_id for r in await store.recent("acme", limit=3)]
    assert newest == ["broken", "job-11", "job-10"]
    assert len(await store.recent("acme")) == 13
    assert await store.recent("beta") == []
    assert await store.find("acme", "job-0") == [f"job-{i:02d}" for i in range(9, -1, -1)]
    assert await store.find("acme", "job-1") == ["job-11", "job-10"]
    assert await store.find("acme", "nope") == []
    assert len(await store.find("acme", "")) == 10  # at most ten
    assert await store.find("acme", "job-00") == ["job-00"]  # the oldest jobs are searched too
    assert await store.find("acme", "broken") == ["broken"]
    assert len(await store.recent("acme", limit=2)) == 2
    assert scoped_id("acme", "job-00") in await store.active()

    sid = scoped_id("acme", "job-00")
    strategies = (events.Strategy.BASE, events.Strategy.OPO)
    items = [item_of(s, q) for q in ("q1", "q2") for s in strategies]
    assert await store.questions(sid, []) == []
    assert [q.question_id for q in await store.questions(sid, ["q2", "missing", "q1"])] == [
        "q2", "q1"]  # fmt: skip
    assert await store.fill(sid, window=3, now=100.0) == items[:3]
    assert await store.fill(sid, window=3, now=101.0) == []  # the window is full
    assert await store.counts(sid) == (1, 3, 0)
    assert await store.attempts(sid, items[0]) == 1
    assert await store.attempts(sid, item_of(events.Strategy.BASE, "never")) == 0
    # Claimed at 100 and not confirmed published: overdue as unsent after 10 s.
    assert sorted(await store.overdue(sid, sent_before=50.0, claimed_before=111.0)) == sorted(
        items[:3]
    )
    assert await store.overdue(sid, sent_before=50.0, claimed_before=99.0) == []
    await store.sent(sid, items[:2])
    await store.sent(sid, [])
    assert await store.overdue(sid, sent_before=50.0, claimed_before=111.0) == items[2:3]
    # Sent at 100 with no reply: overdue as lost once the resend time has come.
    assert sorted(await store.overdue(sid, sent_before=200.0, claimed_before=0.0)) == sorted(
        items[:3]
    )
    assert await store.retry(sid, items[0], 300.0, max_attempts=3) == 2
    assert await store.retry(sid, items[0], 301.0, max_attempts=3) == 3
    assert await store.retry(sid, items[0], 302.0, max_attempts=3) == 0  # attempts used up
    assert await store.record(sid, items[1], answer("q1", "A"))
    assert await store.retry(sid, items[1], 303.0, max_attempts=3) == -1  # answered already
    assert await store.counts(sid) == (1, 2, 1)
    assert await store.fill(sid, window=3, now=400.0) == items[3:]
    await store.finish(sid)
    record = await store.record_of(sid)
    assert record is not None
    assert record.status is events.JobStatus.DONE
    assert record.finished_at is not None
    assert sid not in await store.active()
