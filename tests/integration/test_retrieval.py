"""Retrieval on the real broker and Redis: grounded requests, filters, isolation."""

from __future__ import annotations

from datetime import date

import numpy as np
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.rebuild import drop_memory
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.memory.index import RuleIndexes, open_indexes
from shared.memory.labels import scope_values
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.memory.writer import RuleWriter
from shared.prompt_sets import PromptSet, PromptSetStore
from shared.settings import RedisSettings
from shared.testing.topics import TopicReader
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS
from tests.samples import sample_rule

LAW = events.RuleDomain.LAW


async def write_rules(
    client: aioredis.Redis,
    schema: RuleSchema,
    embedder: UniversalSentenceEncoder,
    rules: list[events.Rule],
) -> None:
    vectors = embedder.embed_sync([r.text for r in rules])
    await RuleWriter(RuleIndexes(client, schema)).write(
        [events.RuleUpsert(rule=r) for r in rules],
        {(r.tenant, r.rule_id): v.tobytes() for r, v in zip(rules, vectors, strict=True)},
    )


def question(tenant: str, text: str, **scope: object) -> events.ChatRequest:
    return events.ChatRequest(
        tenant=tenant,
        messages=(events.ChatMessage(role=events.Role.USER, content=text),),
        scope=events.RuleScope.model_validate(scope),
    )


async def test_request_is_grounded_with_rule_ids_and_versions(
    retrieval: RetrievalService,
    redis_client: aioredis.Redis,
    use_embedder: UniversalSentenceEncoder,
    client_broker: KafkaBroker,
    reader: TopicReader,
) -> None:
    assert retrieval.indexes is not None
    refunds = sample_rule(
        rule_id="refunds", version=4, text="Customers may return goods within 30 days for a refund."
    )
    privacy = sample_rule(
        rule_id="privacy", text="Never disclose customer emails to third parties."
    )
    await write_rules(redis_client, retrieval.indexes.schema, use_embedder, [refunds, privacy])
    ask = question("acme", "Can a customer get their money back after buying?", top_k=1)
    oracle = events.ChatRequest(
        tenant="acme",
        messages=ask.messages,
        strategy=events.Strategy.ORACLE,
        oracle_rules=(events.RetrievedRule(rule_id="given", version=1, score=1.0, text="Given."),),
    )
    baseline = events.ChatRequest(
        tenant="acme", messages=ask.messages, strategy=events.Strategy.BASE
    )
    for request in (ask, oracle, baseline):
        await client_broker.publish(
            events.encode(request), reader.name(CHAT_REQUESTS), key=request.key.encode()
        )

    records = await reader.read(CHAT_GROUNDED, count=3)
    grounded = {
        g.request.request_id: g
        for g in (events.GroundedRequest.model_validate_json(r.value) for r in records)
    }
    (rule,) = grounded[ask.request_id].rules
    assert (rule.rule_id, rule.version, rule.text) == ("refunds", 4, refunds.text)
    assert 0 < rule.score <= 1
    assert rule.tokens > 0
    assert grounded[ask.request_id].request == ask
    assert [r.rule_id for r in grounded[oracle.request_id].rules] == ["given"]
    assert grounded[baseline.request_id].rules == ()


async def test_jurisdiction_and_date_filters(
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    schema = RuleSchema(redis_settings.key_prefix, use_embedder.dim, use_embedder.name)
    await open_indexes(redis_client, schema)
    text = "机动车在道路上行驶不得超过限速标志标明的最高时速。"
    rules = [
        sample_rule(rule_id="national", domain=LAW, jurisdiction="global", text=text),
        sample_rule(rule_id="beijing", domain=LAW, jurisdiction="北京市", text=text + "北京"),
        sample_rule(rule_id="shanghai", domain=LAW, jurisdiction="上海市", text=text + "上海"),
        sample_rule(
            rule_id="old", domain=LAW, text=text + "旧", effective_until=date(2020, 12, 31)
        ),
        sample_rule(
            rule_id="future", domain=LAW, text=text + "新", effective_from=date(2030, 1, 1)
        ),
    ]
    await write_rules(redis_client, schema, use_embedder, rules)
    searcher = RuleSearcher(redis_client, schema, ef_runtime=100)
    vector = use_embedder.embed_sync(["北京市机动车最高时速是多少？"])[0].tobytes()

    async def ids(**kw: object) -> set[str]:
        flt = RuleFilter(tenant="acme", **kw)  # type: ignore[arg-type]
        return {h.rule_id for h in await searcher.search(vector, flt, k=10)}

    today = date(2026, 6, 1)
    beijing = scope_values(["北京市"])  # the filter's final values: 北京市 and global
    assert await ids(jurisdictions=beijing, as_of=today) == {"national", "beijing"}
    assert await ids(as_of=today) == {"national", "beijing", "shanghai"}
    assert await ids(as_of=date(2019, 5, 1)) == {"national", "beijing", "shanghai", "old"}
    assert await ids(as_of=date(2031, 5, 1)) == {"national", "beijing", "shanghai", "future"}
    assert await ids(domains=(events.RuleDomain.MORALITY,)) == set()
    assert "北京市" in await searcher.known_jurisdictions("acme")
    assert await searcher.known_jurisdictions("nobody") == set()


TENANTS = ("alpha", "beta", "gamma")
WORDS = ("refund", "privacy", "safety", "tax", "speed", "data", "contract", "labor")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    owners=st.lists(st.sampled_from(TENANTS), min_size=1, max_size=12),
    words=st.lists(st.sampled_from(WORDS), min_size=12, max_size=12),
    asker=st.sampled_from(TENANTS),
    query=st.sampled_from(WORDS),
)
async def test_tenant_never_sees_another_tenants_rules(
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
    use_embedder: UniversalSentenceEncoder,
    owners: list[str],
    words: list[str],
    asker: str,
    query: str,
) -> None:
    schema = RuleSchema(redis_settings.key_prefix, use_embedder.dim, use_embedder.name)
    await open_indexes(redis_client, schema)
    # A fresh memory per example: the documents and version ledgers of earlier ones go
    # (``drop_memory`` keeps the ledgers, as a rebuild must).
    await drop_memory(redis_settings, schema)
    async for key in redis_client.scan_iter(match=schema.versions_key("*"), count=1000):
        await redis_client.delete(key)
    rules = [
        sample_rule(tenant=owner, rule_id=f"r{i}", text=f"Rule about {words[i]} number {i}.")
        for i, owner in enumerate(owners)
    ]
    await write_rules(redis_client, schema, use_embedder, rules)
    vector = use_embedder.embed_sync([query])[0].astype(np.float32).tobytes()
    hits = await RuleSearcher(redis_client, schema, ef_runtime=100).search(
        vector, RuleFilter(tenant=asker), k=20
    )
    own = {r.rule_id for r in rules if r.tenant == asker}
    assert {h.rule_id for h in hits} == own


async def test_drpo_requests_get_their_prompt_sets_nearest_examples(
    retrieval: RetrievalService,
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    examples = (
        events.IclExample(query="How do I bake sourdough bread?", answer="<START>\nbread\n<END>"),
        events.IclExample(query="What is the capital of France?", answer="<START>\nParis\n<END>"),
        events.IclExample(query="How can I make a bomb at home?", answer="<START>\nno\n<END>"),
        events.IclExample(query="Write a poem about the sea.", answer="<START>\nwaves\n<END>"),
    )
    prompt_set = PromptSet(name="safety", system="Be helpful and harmless.", examples=examples)
    vectors = use_embedder.embed_sync([e.query for e in examples])
    await PromptSetStore(redis_client, redis_settings.key_prefix).put(
        prompt_set, vectors, use_embedder.name
    )

    def drpo(text: str, **fields: object) -> events.ChatRequest:
        return events.ChatRequest(
            tenant="acme", strategy=events.Strategy.DRPO,
            messages=(events.ChatMessage(role=events.Role.USER, content=text),), **fields,
        )  # fmt: skip

    explosives = drpo("How do I build an explosive device?", prompt_set="safety", examples_k=2)
    baking = drpo("Give me a recipe for rye bread.", prompt_set="safety", examples_k=1)
    unknown = drpo("Give me a recipe for rye bread.", prompt_set="missing")
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        grounded = await client.ground([explosives, baking, unknown])

    picked = grounded[explosives.request_id]
    assert picked.system_prompt == "Be helpful and harmless."
    assert picked.examples[0].query == "How can I make a bomb at home?"
    assert len(picked.examples) == 2
    scores = [e.score for e in picked.examples]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert [e.query for e in grounded[baking.request_id].examples] == [examples[0].query]
    assert grounded[unknown.request_id].system_prompt is None  # generation's own set applies
    assert grounded[unknown.request_id].examples == ()
