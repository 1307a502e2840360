"""Change sets in the real Redis, below ingest: staged versions are seen by candidate searches
only, a live write keeps its rule shadowed, promote is refused whole (wrong revision, a live
version that overtook a staged one) or applied whole, discard leaves live rules as they were."""

from __future__ import annotations

import numpy as np
import redis.asyncio as aioredis

from shared import events
from shared.events import IndexOutcome
from shared.memory.changesets import ChangeSetStore
from shared.memory.index import RuleIndexes
from shared.memory.keys import RuleKeys
from shared.memory.query import RuleFilter
from shared.memory.reader import RuleReader
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from tests.samples import sample_rule

DIM = 4


def vector(seed: int) -> bytes:
    row = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return (row / np.linalg.norm(row)).tobytes()


def upsert(rule_id: str, version: int, text: str = "") -> events.RuleUpsert:
    rule = sample_rule(rule_id=rule_id, version=version, text=text or f"{rule_id} v{version}")
    return events.RuleUpsert(rule=rule)


def stage(name: str, change: events.RuleUpsert | events.RuleDelete) -> events.ChangeSetStage:
    return events.ChangeSetStage(name=name, change=change)


class Memory:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        schema = RuleSchema(prefix, DIM, "test")
        self.indexes = RuleIndexes(client, schema)
        self.writer = RuleWriter(self.indexes)
        self.sets = ChangeSetStore.on(self.indexes, max_rules=5)
        self.searcher = RuleSearcher(client, schema, ef_runtime=10)
        self.reader = RuleReader(client, schema)

    async def live(self, *changes: events.RuleUpsert) -> None:
        vectors = {c.target.slot: vector(i) for i, c in enumerate(changes)}
        assert all(await self.writer.write(changes, vectors))

    async def stage(self, *staged: events.ChangeSetStage) -> list[IndexOutcome]:
        vectors = [vector(i) if isinstance(s.change, events.RuleUpsert) else None
                   for i, s in enumerate(staged)]  # fmt: skip
        return await self.sets.stage(staged, vectors)

    async def seen(self, change_set: str | None = None) -> dict[str, int]:
        flt = RuleFilter(tenant="acme", change_set=change_set)
        hits = await self.searcher.search(vector(0), flt, k=20)
        return {hit.rule_id: hit.version for hit in hits}


async def test_staged_versions_are_seen_by_candidate_searches_only(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    memory = Memory(redis_client, prefix)
    await memory.live(upsert("refunds", 1), upsert("privacy", 1), upsert("shipping", 1))
    outcomes = await memory.stage(
        stage("q3", upsert("refunds", 5, "Refunds within 30 days.")),
        stage("q3", events.RuleDelete(tenant="acme", rule_id="privacy", version=2)),
        stage("q3", upsert("warranty", 1)),
        stage("q3", upsert("shipping", 1)),  # not above the live version: nothing to stage
    )
    assert outcomes == [IndexOutcome.APPLIED] * 3 + [IndexOutcome.STALE]
    assert await memory.seen() == {"refunds": 1, "privacy": 1, "shipping": 1}
    assert await memory.seen("q3") == {"refunds": 5, "warranty": 1, "shipping": 1}
    assert await memory.seen("other") == await memory.seen()
    listed, total = await memory.reader.select(RuleFilter(tenant="acme", statuses=()))
    assert total == 3  # a listing of every status still leaves staged documents out
    assert {r.rule_id for r in listed} == {"refunds", "privacy", "shipping"}

    # A live edit of a staged rule stays hidden from the set's searches (the writer keeps the
    # shadow), and the set cannot then be promoted over it.
    await memory.live(upsert("refunds", 2))
    assert (await memory.seen("q3"))["refunds"] == 5
    info = await memory.sets.info("acme", "q3")
    assert info is not None
    assert (info.state, info.revision, info.members) == ("open", 3, 3)


async def test_promote_is_refused_whole_or_applied_whole(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    memory = Memory(redis_client, prefix)
    await memory.live(upsert("refunds", 1), upsert("privacy", 1))
    await memory.stage(
        stage("q3", upsert("refunds", 3, "Refunds within 30 days.")),
        stage("q3", events.RuleDelete(tenant="acme", rule_id="privacy", version=2)),
        stage("q3", upsert("warranty", 1)),
    )
    promote = events.ChangeSetPromote(tenant="acme", name="q3", revision=3)
    stale = await memory.sets.promote(promote.model_copy(update={"revision": 2}))
    assert (stale.outcome, stale.reason) == (
        IndexOutcome.REFUSED,
        "the change set changed since that revision",
    )
    await memory.live(upsert("refunds", 4))  # overtakes the staged version 3
    conflict = await memory.sets.promote(promote)
    assert (conflict.outcome, conflict.conflicts) == (IndexOutcome.REFUSED, ("refunds",))
    assert await memory.seen() == {"refunds": 4, "privacy": 1}  # nothing of the set went live

    await memory.stage(stage("q3", upsert("refunds", 6, "Refunds within 45 days.")))
    done = await memory.sets.promote(promote.model_copy(update={"revision": 4}))
    assert done.outcome is IndexOutcome.APPLIED
    assert [c.target.rule_id for c in done.changes] == ["privacy", "refunds", "warranty"]
    # Switched, not yet settled: searches and reads serve the staged documents already.
    staged_keys = RuleKeys(prefix).staged_prefix("acme") + "*"
    assert len([k async for k in redis_client.scan_iter(match=staged_keys)]) == 2
    await served_as_promoted(memory)
    assert await memory.sets.settle("acme", "q3") == 3  # two moved, one deleted
    assert [k async for k in redis_client.scan_iter(match=staged_keys)] == []
    await served_as_promoted(memory)
    schema = memory.indexes.schema
    assert await redis_client.hlen(schema.shadow_key("acme")) == 0
    assert await redis_client.hlen(schema.settling_key("acme")) == 0
    assert await memory.sets.settle("acme", "q3") == 0
    again = await memory.sets.promote(promote.model_copy(update={"revision": 4}))
    assert again.outcome is IndexOutcome.STALE  # a redelivered promote
    assert len(again.changes) == 3  # still republished: the log must hold them
    late = await memory.stage(stage("q3", upsert("refunds", 9)))
    assert late == [IndexOutcome.REFUSED]


async def served_as_promoted(memory: Memory) -> None:
    assert await memory.seen() == {"refunds": 6, "warranty": 1}
    assert await memory.reader.version("acme", "privacy") == -2
    assert await memory.reader.get("acme", "privacy") is None
    refunds = await memory.reader.get("acme", "refunds")
    assert refunds is not None
    assert (refunds.version, refunds.text, refunds.status) == (6, "Refunds within 45 days.",
                                                               "active")  # fmt: skip
    listed, total = await memory.reader.select(RuleFilter(tenant="acme", statuses=()))
    assert total == 2
    assert [(r.rule_id, r.version) for r in listed] == [("refunds", 6), ("warranty", 1)]


async def test_while_a_set_settles_a_live_edit_wins_and_a_promote_settles_it_first(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    memory = Memory(redis_client, prefix)
    await memory.live(upsert("refunds", 1))
    await memory.stage(stage("a", upsert("refunds", 2)), stage("c", upsert("warranty", 1)))
    promote_a = events.ChangeSetPromote(tenant="acme", name="a", revision=1)
    assert (await memory.sets.promote(promote_a)).outcome is IndexOutcome.APPLIED
    assert await memory.seen() == {"refunds": 2}
    await memory.live(upsert("refunds", 3))  # supersedes a's staged version, which goes
    assert await memory.seen() == {"refunds": 3}
    staged = memory.indexes.schema.candidate_key("acme", "a", "refunds")
    assert not await redis_client.exists(staged)
    assert await memory.sets.settle("acme", "a") == 0  # nothing left to move
    assert await memory.seen() == {"refunds": 3}

    await memory.stage(stage("b", upsert("refunds", 4)))
    await memory.sets.promote(events.ChangeSetPromote(tenant="acme", name="c", revision=1))
    # c is still settling: b's promote settles it first, then switches.
    promote_b = events.ChangeSetPromote(tenant="acme", name="b", revision=1)
    assert (await memory.sets.promote(promote_b)).outcome is IndexOutcome.APPLIED
    settling = await redis_client.hkeys(memory.indexes.schema.settling_key("acme"))
    assert settling == [b"b"]
    assert await memory.seen() == {"refunds": 4, "warranty": 1}
    assert await memory.sets.settle_all("acme") == 1
    assert await memory.seen() == {"refunds": 4, "warranty": 1}


async def test_discard_leaves_the_live_rules_as_they_were(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    memory = Memory(redis_client, prefix)
    await memory.live(upsert("refunds", 1))
    await memory.stage(stage("a", upsert("refunds", 2)), stage("b", upsert("refunds", 3)))
    assert await memory.seen("a") == {"refunds": 2}
    assert await memory.seen("b") == {"refunds": 3}
    discard = events.ChangeSetDiscard(tenant="acme", name="a")
    assert await memory.sets.discard(discard) is IndexOutcome.APPLIED
    assert await memory.sets.discard(discard) is IndexOutcome.STALE
    assert await memory.seen("a") == {"refunds": 1}
    assert await memory.seen("b") == {"refunds": 3}  # b still shadows it
    shadow = await redis_client.hget(memory.indexes.schema.doc_key("acme", "refunds"), "shadow")
    assert shadow == b"b"
    promoted = events.ChangeSetPromote(tenant="acme", name="a", revision=1)
    assert (await memory.sets.promote(promoted)).outcome is IndexOutcome.REFUSED
    unknown = events.ChangeSetDiscard(tenant="acme", name="never")
    assert await memory.sets.discard(unknown) is IndexOutcome.REFUSED


async def test_a_full_change_set_refuses_new_rules(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    memory = Memory(redis_client, prefix)
    outcomes = await memory.stage(*(stage("big", upsert(f"r{i}", 1)) for i in range(6)))
    assert outcomes == [IndexOutcome.APPLIED] * 5 + [IndexOutcome.REFUSED]
    assert await memory.stage(stage("big", upsert("r0", 2))) == [IndexOutcome.APPLIED]
