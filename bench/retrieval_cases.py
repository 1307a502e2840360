"""What ``bench.retrieval_quality`` asks and how it scores an answer: exam questions as the exam
job sends them (with their variants), each question's governing articles, the metrics.

Variants of a question: ``full`` (question and options, its location), ``stem`` (no options),
``no_scope`` (no jurisdiction filter), ``no_place`` (no location, and every name of a place
taken out of its text: what a user who does not say where asks; the tenant's ``unplaced``
policy decides what it is searched under).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.common import percentiles
from services.generation.prompts.opo import opo_budget
from services.grading.asking import exam_request
from services.grading.datasets import ExamQuestion
from shared import events
from shared.memory.search import Hit
from shared.opo import rule_id_for, split_principle
from shared.tokens import HeuristicTokenCounter

BUDGET = 1000
VARIANTS = ("full", "stem", "no_scope", "no_place")


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

    def halves(self) -> dict[str, float]:
        """hit@1 over the even and the odd questions apart: a figure that holds on both halves
        was not fitted to one of them."""
        return {
            "even": round(float(np.mean(self.hits1[0::2])), 4) if self.hits1 else 0.0,
            "odd": round(float(np.mean(self.hits1[1::2])), 4) if self.hits1[1:] else 0.0,
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


class Places:
    """Takes every name of the tenant's tree out of a text (longest names first)."""

    def __init__(self, tree: events.JurisdictionTree) -> None:
        names = {n for node in tree.nodes for n in (node.path.rpartition("/")[2], *node.aliases)}
        ordered = sorted(names, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(n) for n in ordered))

    def strip(self, text: str) -> str:
        return self._pattern.sub("", text)

    def unplaced(self, question: ExamQuestion) -> ExamQuestion:
        options = {letter: self.strip(text) for letter, text in question.options.items()}
        return question.model_copy(
            update={"stem": self.strip(question.stem), "options": options, "location": None}
        )


def variant_request(
    job: events.ExamJob,
    question: ExamQuestion,
    variant: str,
    reply_topic: str,
    places: Places,
) -> events.ChatRequest:
    """The exam's own request (``protocol: opo``), its text or scope changed by the variant."""
    asked = places.unplaced(question) if variant == "no_place" else question
    request = exam_request(job, asked, events.Strategy.OPO, reply_topic, nonce="bench")
    if variant == "stem":
        system, _ = request.messages
        user = events.ChatMessage(role=events.Role.USER, content=question.stem)
        request = request.model_copy(update={"messages": (system, user)})
    elif variant in ("no_scope", "no_place"):
        every = variant == "no_scope" or request.scope.any_jurisdiction
        scope = request.scope.model_copy(update={"jurisdictions": (), "any_jurisdiction": every})
        request = request.model_copy(update={"scope": scope})
    return request.model_copy(update={"request_id": f"{request.request_id}-{variant}"})


def query_text(question: ExamQuestion, variant: str, places: Places) -> str:
    """What the variant's request is searched by (the baselines search the same text)."""
    if variant == "stem":
        return question.stem
    if variant == "no_place":
        return places.unplaced(question).prompt_text()
    return question.prompt_text()


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
