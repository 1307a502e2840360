"""Retrieval quality on OPO's exams: does each question's governing article reach the prompt?

The product path, end to end: ``rules import-opo`` of ``law_principles.jsonl`` with the
jurisdiction tree of ``province2laws.json`` and of ``morality_principles.jsonl`` (Kafka -> the
ingest service -> Redis), then each A-Law question as the exam job sends it (``protocol: opo``:
question and options, its location, OPO's law corpus) through the retrieval service, in the
variants of ``retrieval_cases.py`` (full, stem only, no scope filter, no place at all), and each
question of the professional-morality sample (OPO's morality corpus, no place filter). In-run
baselines on the same index and scopes: vector only (HNSW), lexical only (BM25), exact cosine
(numpy over every stored vector); and the searches the product no longer makes, in-process with
the product's fusion: a question with no place under the national scope only (the ``default``
policy), a morality question over every domain.

A question's governing articles are those of its ``principle`` column (the rules it was built
from). Metrics per method and variant: ``hit_at_1``, ``hit_at_5``, ``mrr`` (first governing
article's reciprocal rank, 0 if not returned), ``hit_in_budget`` (one reaches the prompt under
OPO's 1,000-token budget), ``recall_at_5`` (share of the question's articles in the top 5),
``p99_ms``; stem-only hit@1 also on the even and odd questions apart, and on the morality
sample (nothing here was tuned on A-Law: a second exam and two halves). Questions whose articles
are not in the corpus are counted and left out.

    python -m bench.retrieval_quality [--data ../shared/data/opo] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

from bench.common import private_stack, service_process, write_result
from bench.retrieval_cases import (
    BUDGET,
    VARIANTS,
    Exact,
    Places,
    Scores,
    as_rules,
    governing_articles,
    query_text,
    variant_request,
)
from services.grading.datasets import load_exam
from services.grading.opo_protocol import OPO_TOP_K
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.events import RulesTopicEvent
from shared.kafka import ensure_topics
from shared.memory.index import open_indexes
from shared.memory.jurisdictions import JurisdictionMap, filter_values
from shared.memory.labels import normalize_label
from shared.memory.query import RuleFilter
from shared.memory.schema import RuleSchema
from shared.memory.search import Hit, RuleSearcher, order_hits
from shared.opo import opo_rules, opo_tree, organizations_of, read_jsonl, read_province2laws
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings
from shared.topics import CHAT_RESPONSES

TENANT = "opo"
DEPTH = 50
PRODUCT_DEPTH = 2 * OPO_TOP_K
"""Candidates per search in the product (``RetrievalOptions``: top_k x 2)."""
LAW, MORALITY = "a_law.csv", "a_professional_morality.sample.csv"
WRITE_ORDER_SEED = 7
DEFAULT_DATA = Path(__file__).parents[2] / "shared" / "data" / "opo"


async def load_exact(client: aioredis.Redis, schema: RuleSchema, rules: list[events.Rule]) -> Exact:
    """The raw vectors, as ingest stored them."""
    ids, where, rows = [], [], []
    for rule in rules:
        raw = await client.hget(schema.doc_key(TENANT, rule.rule_id), "embedding")
        if isinstance(raw, bytes):
            ids.append(rule.rule_id)
            where.append(normalize_label(rule.jurisdiction))
            rows.append(np.frombuffer(raw, dtype=np.float32))
    return Exact(ids, where, np.vstack(rows))


async def timed(call: Awaitable[list[Hit]]) -> tuple[list[Hit], float]:
    started = time.perf_counter()
    hits = await call
    return hits, (time.perf_counter() - started) * 1000


async def run(data: Path, limit: int | None, env: dict[str, str]) -> dict[str, object]:
    kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
    redis_settings = RedisSettings(url=env["REDIS_URL"])
    await ensure_topics(kafka)
    principles = read_jsonl(data / "morality_principles.jsonl")
    tree = opo_tree(read_province2laws(data / "province2laws.json"), tenant=TENANT,
                    organizations=organizations_of(principles))  # fmt: skip
    jurisdictions = JurisdictionMap.from_tree(tree)
    rules = list(opo_rules(read_jsonl(data / "law_principles.jsonl"), tenant=TENANT,
                           domain=events.RuleDomain.LAW, tree=jurisdictions))  # fmt: skip
    morality = list(opo_rules(principles, tenant=TENANT, domain=events.RuleDomain.MORALITY,
                              tree=jurisdictions))  # fmt: skip
    places = Places(tree)
    corpus = {r.rule_id for r in (*rules, *morality)}
    exams = {
        name: [(q, governing_articles(q) & corpus) for q in load_exam(data / name).questions]
        for name in (LAW, MORALITY)
    }
    questions = len(exams[LAW][:limit])
    graded = {name: [(q, g) for q, g in covered[:limit] if g] for name, covered in exams.items()}
    jobs = {name: events.ExamJob(tenant=TENANT, dataset=name, scoring="logprobs") for name in exams}
    reply_topic = kafka.topics(CHAT_RESPONSES)
    cases = [(LAW, v) for v in VARIANTS] + [(MORALITY, v) for v in ("full", "stem")]

    embedder = UniversalSentenceEncoder()
    await embedder.start()
    schema = RuleSchema(redis_settings.key_prefix, embedder.dim, embedder.name)
    client = make_redis(redis_settings)
    await open_indexes(client, schema)
    product = {case: Scores() for case in cases}
    service_env = {**env, "ALIGNSTREAM_RETRIEVAL_BATCH_WAIT_MS": "2"}
    with service_process("ingest", env), service_process("retrieval", service_env):
        async with AlignstreamClient(kafka) as producer:
            started = time.perf_counter()
            # Shuffled (seeded): the files list each question's articles side by side, and an
            # order that favours them must not be what the figures measure.
            upserts = [events.RuleUpsert(rule=r) for r in (*rules, *morality)]
            random.Random(WRITE_ORDER_SEED).shuffle(upserts)
            batch: list[RulesTopicEvent] = [tree, *upserts]
            await producer.publish_rules(batch, wait=True, timeout_s=1800)
            import_s = time.perf_counter() - started
            for name, variant in cases:
                requests = [variant_request(jobs[name], q, variant, reply_topic, places)
                            for q, _ in graded[name]]  # fmt: skip
                grounded = await producer.ground(requests, timeout_s=600)
                for request, (_, governing) in zip(requests, graded[name], strict=True):
                    found = grounded[request.request_id]
                    product[name, variant].add(found.rules, governing, found.retrieval_ms)

    # Baselines in the same run, on the same index and the same scopes.
    searcher = RuleSearcher(client, schema, ef_runtime=100)
    exact = await load_exact(client, schema, rules)
    baselines = {m: {v: Scores() for v in VARIANTS} for m in ("vector", "lexical", "exact")}
    national_only, any_domain = Scores(), Scores()
    today = datetime.now(UTC).date()
    by_id = {r.rule_id: r for r in rules}
    national = filter_values(
        jurisdictions.scope_for(events.RuleScope(jurisdictions=tree.default_scope), "")
    )
    law_domain = (events.RuleDomain.LAW,)
    for variant in VARIANTS:
        texts = [query_text(q, variant, places) for q, _ in graded[LAW]]
        vectors = await embedder.embed(texts)
        for i, (question, governing) in enumerate(graded[LAW]):
            text, vector = texts[i], vectors[i]
            request = variant_request(jobs[LAW], question, variant, reply_topic, places)
            scope = jurisdictions.scope_for(request.scope, request.query)
            allowed = filter_values(scope)
            flt = RuleFilter(tenant=TENANT, domains=law_domain, jurisdictions=allowed, as_of=today)
            blob = vector.astype(np.float32).tobytes()
            hits, ms = await timed(searcher.search(blob, flt, k=DEPTH))
            baselines["vector"][variant].add(as_rules(hits), governing, ms)
            hits, ms = await timed(searcher.text_search(text, blob, flt, k=DEPTH))
            baselines["lexical"][variant].add(as_rules(hits), governing, ms)
            started = time.perf_counter()
            ids = exact.search(vector, allowed, DEPTH)
            ms = (time.perf_counter() - started) * 1000
            ranked = [events.RetrievedRule(rule_id=i, version=1, score=0.0, title=by_id[i].title,
                                           text=by_id[i].text) for i in ids]  # fmt: skip
            baselines["exact"][variant].add(ranked, governing, ms)
            if variant == "no_place":  # the ``default`` policy: the national scope only
                flt = RuleFilter(tenant=TENANT, domains=law_domain, jurisdictions=national,
                                 as_of=today)  # fmt: skip
                hits, ms = await timed(searcher.hybrid(text, blob, flt, k=PRODUCT_DEPTH))
                national_only.add(as_rules(order_hits(hits)), governing, ms)
    texts = [q.prompt_text() for q, _ in graded[MORALITY]]
    for (_, governing), text, vector in zip(graded[MORALITY], texts,
                                            await embedder.embed(texts), strict=True):  # fmt: skip
        flt = RuleFilter(tenant=TENANT, as_of=today)  # every domain, as before domain scoping
        hits, ms = await timed(searcher.hybrid(text, vector.astype(np.float32).tobytes(), flt,
                                               k=PRODUCT_DEPTH))  # fmt: skip
        any_domain.add(as_rules(order_hits(hits)), governing, ms)
    await client.aclose()
    await embedder.close()

    methods = {"product": {v: product[LAW, v].summary() for v in VARIANTS}}
    methods |= {m: {v: s.summary() for v, s in by.items()} for m, by in baselines.items()}
    methods["product_morality"] = {v: product[MORALITY, v].summary() for v in ("full", "stem")}
    methods["national_only"] = {"no_place": national_only.summary()}
    methods["morality_any_domain"] = {"full": any_domain.summary()}
    best_baseline = max(methods[m]["full"]["hit_at_1"] for m in baselines)
    stem = product[LAW, "stem"]
    return {
        "corpus_rules": len(rules),
        "morality_rules": len(morality),
        "tree_nodes": len(tree.nodes),
        "unplaced_policy": tree.unplaced,
        "questions": questions,
        "questions_graded": len(graded[LAW]),
        "questions_without_article_in_corpus": questions - len(graded[LAW]),
        "morality_questions_graded": len(graded[MORALITY]),
        "import_s": round(import_s, 1),
        "budget_tokens": BUDGET,
        "methods": methods,
        "product_hit_in_budget": methods["product"]["full"]["hit_in_budget"],
        "product_hit_at_1_stem": methods["product"]["stem"]["hit_at_1"],
        "product_hit_at_1_stem_halves": stem.halves(),
        "product_hit_at_1_full_halves": product[LAW, "full"].halves(),
        "morality_hit_at_1_stem": methods["product_morality"]["stem"]["hit_at_1"],
        "product_vs_best_baseline_hit_at_1": round(
            methods["product"]["full"]["hit_at_1"] / best_baseline, 4
        )
        if best_baseline
        else 0.0,
        "no_place_hit_in_budget": methods["product"]["no_place"]["hit_in_budget"],
        "no_place_hit_in_budget_national_only": methods["national_only"]["no_place"][
            "hit_in_budget"
        ],
        "morality_hit_in_budget": methods["product_morality"]["full"]["hit_in_budget"],
        "morality_hit_in_budget_any_domain": methods["morality_any_domain"]["full"][
            "hit_in_budget"
        ],
        "targets": {
            "product_hit_in_budget": 0.99,
            "product_hit_at_1_stem": 0.95,
            "product_vs_best_baseline_hit_at_1": 1.0,
        },
        "exam_path": "exam_request(protocol=opo) -> chat.requests -> retrieval -> chat.grounded",
        "embedder": embedder.name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="First N questions only.")
    args = parser.parse_args()
    if not (args.data / LAW).exists():
        raise SystemExit(f"{args.data}: OPO's data is not there (see ../shared/data/README.md)")
    with private_stack() as env:
        result = asyncio.run(run(args.data, args.limit, env))
    write_result("retrieval_quality", result)


if __name__ == "__main__":
    main()
