"""The comparisons inside the Lua scripts, at their boundaries, against the real Redis: the rate
limiter's bucket, the jurisdiction tree's version guard, the exam store's window, retries and
job ends, and the research lease that only its owner renews or releases. ``bench.mutation``
mutates each comparison of these scripts; every one of them changes an outcome here."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.gateway.ratelimit import RateLimiter
from services.grading.datasets import ExamQuestion
from services.grading.records import ExamAnswer, item_of, scoped_id
from services.grading.research.store import ResearchStore
from services.grading.store import ExamStore
from shared import events
from shared.events import JurisdictionNode, JurisdictionTree
from shared.memory.trees import JurisdictionStore
from shared.settings import RedisSettings


async def test_a_full_bucket_of_one_token_admits_exactly_one_request(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    limiter = RateLimiter(redis_client, prefix)
    assert await limiter.acquire("one", 1.0) == 0.0  # the bucket starts full: exactly 1 token
    wait_s = await limiter.acquire("one", 1.0)
    assert 0.9 <= wait_s <= 1.0
    ttl_ms = await redis_client.pttl(f"{prefix}:ratelimit:one")
    assert 1000 < ttl_ms <= 2000  # a full refill (1 s) and a second's grace
    # A fractional rate: a burst of one, and the wait is the time to the next whole token.
    assert await limiter.acquire("slow", 0.5) == 0.0
    slow = await limiter.acquire("slow", 0.5)
    assert 1.9 <= slow <= 2.0
    assert abs(slow * 1000 - round(slow * 1000)) < 1e-6  # whole milliseconds from the script


def tree(version: int) -> JurisdictionTree:
    return JurisdictionTree(tenant="acme", version=version, nodes=(JurisdictionNode(path="CN"),))


async def test_a_tree_is_replaced_only_by_a_higher_version(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    store = JurisdictionStore(redis_client, prefix)
    assert await store.get("acme") is None
    assert await store.put(tree(2))
    assert not await store.put(tree(2))  # the same version again: a replay
    assert not await store.put(tree(1))
    assert await store.put(tree(3))
    stored = await store.get("acme")
    assert stored is not None
    assert stored.version == 3


def question(qid: str) -> ExamQuestion:
    return ExamQuestion(question_id=qid, stem="Q?", options={"A": "x", "B": "y"}, answer="A")


async def exam(
    redis_client: aioredis.Redis, settings: RedisSettings, n: int
) -> tuple[ExamStore, str]:
    store = ExamStore(redis_client, settings.key_prefix)
    job = events.ExamJob(job_id="j", tenant="acme", dataset="x.csv",
                         strategies=(events.Strategy.BASE,))  # fmt: skip
    assert await store.create(job, "x", [question(f"q{i}") for i in range(n)])
    return store, scoped_id("acme", "j")


async def test_the_exam_window_is_filled_to_its_size_and_never_past_it(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store, sid = await exam(redis_client, redis_settings, 5)
    assert len(await store.fill(sid, window=2, now=1.0)) == 2
    assert await store.fill(sid, window=2, now=2.0) == []
    assert await store.fill(sid, window=1, now=2.0) == []  # a smaller window: nothing moves
    assert len(await store.fill(sid, window=3, now=3.0)) == 1  # room for exactly one more
    assert await store.counts(sid) == (2, 3, 0)


async def test_an_item_is_retried_up_to_its_attempts_and_never_once_answered(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store, sid = await exam(redis_client, redis_settings, 2)
    first, second = await store.fill(sid, window=2, now=1.0)
    assert await store.retry(sid, first, now=2.0, max_attempts=3) == 2
    assert await store.retry(sid, first, now=3.0, max_attempts=3) == 3
    assert await store.retry(sid, first, now=4.0, max_attempts=3) == 0  # all three used
    assert await store.attempts(sid, first) == 3
    answer = ExamAnswer(question_id="q1", strategy=events.Strategy.BASE, expected="A",
                        chosen="A", outcome=events.AnswerOutcome.CORRECT)  # fmt: skip
    assert await store.record(sid, second, answer)
    assert await store.retry(sid, second, now=5.0, max_attempts=3) == -1
    assert item_of(events.Strategy.BASE, "q1") == second


async def test_a_job_ends_once_whether_finished_or_cancelled(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    store, sid = await exam(redis_client, redis_settings, 1)
    assert sid in await store.active()
    assert await store.cancel(sid)
    assert not await store.cancel(sid)
    await store.finish(sid)  # a finish after the cancel changes nothing
    record = await store.record_of(sid)
    assert record is not None
    assert record.status is events.JobStatus.CANCELLED
    assert sid not in await store.active()
    assert not await store.cancel(scoped_id("acme", "missing"))


async def test_only_the_leases_owner_renews_or_releases_it(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    store = ResearchStore(redis_client, prefix)
    sid = scoped_id("acme", "s1")
    lease = store.keys.part(sid, "lease")
    assert await store.take_lease(sid, "replica-a", 1_000)
    assert not await store.take_lease(sid, "replica-b", 1_000)
    assert not await store.renew_lease(sid, "replica-b", 60_000)
    assert await redis_client.pttl(lease) <= 1_000
    assert await store.renew_lease(sid, "replica-a", 60_000)
    assert await redis_client.pttl(lease) > 1_000
    await store.release_lease(sid, "replica-b")
    assert await redis_client.get(lease) == b"replica-a"
    await store.release_lease(sid, "replica-a")
    assert await redis_client.get(lease) is None
    assert not await store.renew_lease(sid, "replica-a", 60_000)  # released: nothing to renew
