"""Every path of the rule searcher against the real Redis: vector only, hybrid (with the
default fusion), English terms, Chinese terms through the index's own segmenter, a question
with no terms, and a tenant without an index on each path."""

from __future__ import annotations

import numpy as np
import redis.asyncio as aioredis

from shared import events
from shared.memory.index import open_indexes
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.settings import RedisSettings
from tests.samples import sample_rule

DIM = 8


def vector(i: int) -> bytes:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v.tobytes()


RULES = {
    "refunds": ("Refunds are paid within fourteen days of a return.", "en", 0),
    "privacy": ("Never share personal data with advertisers.", "en", 1),
    "tuihuo": ("消费者有权自收到商品之日起七日内退货。", "zh-CN", 2),
    "shipping": ("Parcels leave the warehouse every weekday.", "en", 3),
}


async def searcher(client: aioredis.Redis, settings: RedisSettings) -> RuleSearcher:
    schema = RuleSchema(settings.key_prefix, DIM, "test")
    writer = RuleWriter(await open_indexes(client, schema))
    upserts = [
        events.RuleUpsert(rule=sample_rule(rule_id=rid, text=text, locale=locale, title=""))
        for rid, (text, locale, _) in RULES.items()
    ]
    vectors = {("acme", rid): vector(i) for rid, (_, _, i) in RULES.items()}
    assert all(await writer.write(upserts, vectors))
    return RuleSearcher(client, schema, ef_runtime=10)


async def test_each_search_path_finds_what_it_should(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    rules = await searcher(redis_client, redis_settings)
    acme = RuleFilter(tenant="acme")
    # Vector only: ranks from the vector search, none from text.
    hits = await rules.hybrid("advertisers", vector(1), acme, k=2, lexical=False)
    assert hits[0].rule_id == "privacy"
    assert all(h.lexical_rank is None and h.vector_rank is not None for h in hits)
    # Hybrid: the text search finds the refund rule by its words though the vector points
    # elsewhere; the default fusion gives it a fused score.
    fused = await rules.hybrid("When are refunds paid?", vector(3), acme, k=4)
    found = {h.rule_id: h for h in fused}
    assert found["refunds"].lexical_rank == 1
    assert found["refunds"].fused > 0
    assert await rules.terms("When are refunds paid?", "acme") == ["when", "are", "refunds", "paid"]
    # Chinese: the terms are the segmenter's words; the text search finds the rule.
    assert await rules.terms("七日内可以退货吗", "acme")
    chinese = await rules.text_search("七日内可以退货吗", vector(0), acme, k=3)
    assert [h.rule_id for h in chinese] == ["tuihuo"]
    # A question with no terms searches no text, and raises nothing.
    assert await rules.terms("? !", "acme") == []
    assert await rules.text_search("? !", vector(0), acme, k=3) == []


async def test_a_tenant_without_an_index_finds_nothing_on_every_path(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    rules = await searcher(redis_client, redis_settings)
    nobody = RuleFilter(tenant="nobody")
    assert await rules.terms("七日内退货", "nobody") == []
    assert await rules.text_search("refunds paid", vector(0), nobody, k=3) == []
    assert await rules.hybrid("七日内退货", vector(0), nobody, k=3) == []
    assert await rules.hybrid("refunds", vector(0), nobody, k=3, lexical=False) == []


async def test_full_text_ranks_by_the_words_and_the_filter_only_admits(
    redis_client: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    """RediSearch scores an OR of terms wrongly inside a filter (by write order): the ranking is
    the OR's alone, the filter only says what may be returned, also when the rules it admits
    rank below everything the ranking returned (a narrow scope in a large tenant)."""
    schema = RuleSchema(redis_settings.key_prefix, DIM, "test")
    writer = RuleWriter(await open_indexes(redis_client, schema))
    texts = {f"eu{i}": ("refund refund refund policy", "EU") for i in range(30)}
    texts["us-weak"] = ("a refund is possible", "US")
    texts["us-strong"] = ("refund refund policy for refund claims", "US")
    upserts = [
        events.RuleUpsert(
            rule=sample_rule(tenant="wide", rule_id=rid, text=text, jurisdiction=where, title="")
        )
        for rid, (text, where) in texts.items()
    ]
    assert all(await writer.write(upserts, {("wide", u.rule.rule_id): vector(0) for u in upserts}))
    rules = RuleSearcher(redis_client, schema, ef_runtime=10)
    us = RuleFilter(tenant="wide", jurisdictions=("us",))
    # k=1 ranks 8 ids: all EU rules; the US rules are found by the filter over the whole index
    (best,) = await rules.text_search("refund policy", vector(0), us, k=1)
    assert best.rule_id == "us-strong"
    found = await rules.text_search("refund policy", vector(0), us, k=5)
    assert [h.rule_id for h in found] == ["us-strong", "us-weak"]
    assert [h.lexical_rank for h in found] == [1, 2]
    everywhere = await rules.text_search("refund policy", vector(0), RuleFilter(tenant="wide"), k=3)
    assert {h.rule_id for h in everywhere} <= {f"eu{i}" for i in range(30)}
