"""Retrieval quality on OPO's A-Law: does each question's governing article reach the prompt?

The product path, end to end: ``rules import-opo`` of ``law_principles.jsonl`` with the
jurisdiction tree of ``province2laws.json`` (Kafka -> the ingest service -> Redis), then each
A-Law question as the exam job sends it (``protocol: opo``: question and options, its location)
through the retrieval service. Variants: the full question, the stem only, no scope filter.
In-run baselines on the same index and scopes: vector only (HNSW), lexical only (BM25), exact
cosine (numpy over every stored vector).

A question's governing articles are those of its ``principle`` column (the rules it was built
from). Metrics per method and variant: ``hit_at_1``, ``hit_at_5``, ``mrr`` (first governing
article's reciprocal rank, 0 if not returned), ``hit_in_budget`` (one reaches the prompt under
OPO's 1,000-token budget), ``recall_at_5`` (share of the question's articles in the top 5),
``p99_ms``. Questions whose articles are not in the corpus are counted and left out.

    python -m bench.retrieval_quality [--data ../shared/data/opo] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

from bench.common import percentiles, private_stack, service_process, write_result
from services.generation.prompts.opo import opo_budget
from services.grading.asking import exam_request
from services.grading.datasets import ExamQuestion, load_exam
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
from shared.memory.search import Hit, RuleSearcher
from shared.opo import (
    opo_rules,
    opo_tree,
    read_jsonl,
    read_province2laws,
    rule_id_for,
    split_principle,
)
from shared.redis import make_redis
from shared.settings import KafkaSettings, RedisSettings
from shared.tokens import HeuristicTokenCounter
from shared.topics import CHAT_RESPONSES

TENANT = "opo"
BUDGET = 1000
DEPTH = 50
VARIANTS = ("full", "stem", "no_scope")
DEFAULT_DATA = Path(__file__).parents[2] / "shared" / "data" / "opo"


@dataclass
class Scores:
    hits1: list[float] = field(default_factory=list)
    hits5: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    in_budget: list[float] = field(default_factory=list)
    recall5: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)

    def add(self, ranked: Sequence[events.RetrievedRule], governing: set[str], ms: float) -> None:
        ids = [r.rule_id for r in ranked]
        first = next((i for i, rule_id in enumerate(ids, start=1) if rule_id in governing), None)
        self.hits1.append(float(first == 1))
        self.hits5.append(float(first is not None and first <= 5))
        self.rr.append(1.0 / first if first else 0.0)
        packed = opo_budget(ranked, BUDGET, HeuristicTokenCounter().count)
        self.in_budget.append(float(any(r.rule_id in governing for r in packed)))
        self.recall5.append(len(governing & set(ids[:5])) / len(governing))
        self.ms.append(ms)

    def summary(self) -> dict[str, float]:
        def mean(values: list[float]) -> float:
            return round(float(np.mean(values)), 4) if values else 0.0

        return {
            "questions": len(self.hits1),
            "hit_at_1": mean(self.hits1),
            "hit_at_5": mean(self.hits5),
            "mrr": mean(self.rr),
            "hit_in_budget": mean(self.in_budget),
            "recall_at_5": mean(self.recall5),
            "p99_ms": percentiles(self.ms)["p99"] if self.ms else 0.0,
        }


def governing_articles(question: ExamQuestion) -> set[str]:
    law, articles = split_principle(question.principle or "")
    return {rule_id_for(law, article) for article, _ in articles}


def as_rules(hits: Sequence[Hit]) -> list[events.RetrievedRule]:
    return [
        events.RetrievedRule(
            rule_id=h.rule_id, version=h.version, score=h.similarity, title=h.title, text=h.text
        )
        for h in hits
    ]


def variant_request(
    job: events.ExamJob, question: ExamQuestion, variant: str, reply_topic: str
) -> events.ChatRequest:
    """The exam's own request (``protocol: opo``), its text or scope changed by the variant."""
    request = exam_request(job, question, events.Strategy.OPO, reply_topic, nonce="bench")
    if variant == "stem":
        system, _ = request.messages
        user = events.ChatMessage(role=events.Role.USER, content=question.stem)
        request = request.model_copy(update={"messages": (system, user)})
    elif variant == "no_scope":
        scope = request.scope.model_copy(update={"jurisdictions": (), "any_jurisdiction": True})
        request = request.model_copy(update={"scope": scope})
    return request.model_copy(update={"request_id": f"{request.request_id}-{variant}"})


class Exact:
    """Exact cosine over every stored vector of the tenant (the brute-force cross-check)."""

    def __init__(self, ids: list[str], jurisdictions: list[str], matrix: np.ndarray) -> None:
        self.ids = ids
        self.jurisdictions = np.asarray(jurisdictions)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.matrix = matrix / np.maximum(norms, 1e-12)

    def search(self, vector: np.ndarray, allowed: tuple[str, ...] | None, k: int) -> list[str]:
        scores = self.matrix @ (vector / max(float(np.linalg.norm(vector)), 1e-12))
        if allowed is not None:
            scores = np.where(np.isin(self.jurisdictions, allowed), scores, -np.inf)
        order = np.argsort(-scores)[:k]
        return [self.ids[i] for i in order if np.isfinite(scores[i])]


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
    tree = opo_tree(read_province2laws(data / "province2laws.json"), tenant=TENANT)
    jurisdictions = JurisdictionMap.from_tree(tree)
    rules = list(opo_rules(read_jsonl(data / "law_principles.jsonl"), tenant=TENANT,
                           domain=events.RuleDomain.LAW, tree=jurisdictions))  # fmt: skip
    questions = list(load_exam(data / "a_law.csv").questions)[:limit]
    corpus = {r.rule_id for r in rules}
    covered = [(q, governing_articles(q) & corpus) for q in questions]
    graded = [(q, g) for q, g in covered if g]
    job = events.ExamJob(tenant=TENANT, dataset="a_law.csv", scoring="logprobs")
    reply_topic = kafka.topics(CHAT_RESPONSES)

    embedder = UniversalSentenceEncoder()
    await embedder.start()
    schema = RuleSchema(redis_settings.key_prefix, embedder.dim, embedder.name)
    client = make_redis(redis_settings)
    await open_indexes(client, schema)
    product = {v: Scores() for v in VARIANTS}
    service_env = {**env, "ALIGNSTREAM_RETRIEVAL_BATCH_WAIT_MS": "2"}
    with service_process("ingest", env), service_process("retrieval", service_env):
        async with AlignstreamClient(kafka) as producer:
            started = time.perf_counter()
            batch: list[RulesTopicEvent] = [tree, *(events.RuleUpsert(rule=r) for r in rules)]
            await producer.publish_rules(batch, wait=True, timeout_s=1800)
            import_s = time.perf_counter() - started
            for variant in VARIANTS:
                requests = [variant_request(job, q, variant, reply_topic) for q, _ in graded]
                grounded = await producer.ground(requests, timeout_s=600)
                for request, (_, governing) in zip(requests, graded, strict=True):
                    found = grounded[request.request_id]
                    product[variant].add(found.rules, governing, found.retrieval_ms)

    # Baselines in the same run, on the same index and the same scopes.
    searcher = RuleSearcher(client, schema, ef_runtime=100)
    exact = await load_exact(client, schema, rules)
    baselines = {m: {v: Scores() for v in VARIANTS} for m in ("vector", "lexical", "exact")}
    today = datetime.now(UTC).date()
    by_id = {r.rule_id: r for r in rules}
    texts = {"full": [q.prompt_text() for q, _ in graded], "stem": [q.stem for q, _ in graded]}
    vectors = {name: await embedder.embed(batch) for name, batch in texts.items()}
    for variant in VARIANTS:
        kind = "stem" if variant == "stem" else "full"
        for i, (question, governing) in enumerate(graded):
            text, vector = texts[kind][i], vectors[kind][i]
            request = variant_request(job, question, variant, reply_topic)
            scope = jurisdictions.scope_for(request.scope, request.query)
            allowed = filter_values(scope)
            flt = RuleFilter(tenant=TENANT, jurisdictions=allowed, as_of=today)
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
    await client.aclose()
    await embedder.close()

    methods = {"product": {v: s.summary() for v, s in product.items()}}
    methods |= {m: {v: s.summary() for v, s in by.items()} for m, by in baselines.items()}
    best_baseline = max(methods[m]["full"]["hit_at_1"] for m in baselines)
    return {
        "corpus_rules": len(rules),
        "tree_nodes": len(tree.nodes),
        "questions": len(questions),
        "questions_graded": len(graded),
        "questions_without_article_in_corpus": len(questions) - len(graded),
        "import_s": round(import_s, 1),
        "budget_tokens": BUDGET,
        "methods": methods,
        "product_hit_in_budget": methods["product"]["full"]["hit_in_budget"],
        "product_hit_at_1_stem": methods["product"]["stem"]["hit_at_1"],
        "product_vs_best_baseline_hit_at_1": round(
            methods["product"]["full"]["hit_at_1"] / best_baseline, 4
        )
        if best_baseline
        else 0.0,
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
    if not (args.data / "a_law.csv").exists():
        raise SystemExit(f"{args.data}: OPO's data is not there (see ../shared/data/README.md)")
    with private_stack() as env:
        result = asyncio.run(run(args.data, args.limit, env))
    write_result("retrieval_quality", result)


if __name__ == "__main__":
    main()
