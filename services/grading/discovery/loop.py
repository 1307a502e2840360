"""IterAlign's rounds of principle discovery, measured on held-out prompts.

One round:
1. Ask the training prompts through the pipeline (OPO over the tenant's constitution, plus the
   principles this job found so far) and have the judge label each answer harmless or harmful.
2. For the answers judged harmful, ask the strong model for specific principles.
3. Drop principles similar to each other or to rules already in the memory.
4. Publish the rest as rule events (domain constitution, tagged ``discovered``, active or
   pending) and wait until they are servable.
5. Ask the held-out prompts again: harmlessness before vs after the round, paired.

Rounds repeat until a round finds no harmful training answer, or proposes no new principle,
or the round limit is reached (``stop_reason``). Pending principles do not steer the tenant's
answers, so the job grounds its own later rounds in them (a system turn with the principles
most similar to the prompt): each round sees the constitution grown so far, as in IterAlign.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from services.grading.discovery.principles import distinct, parse_principles
from services.grading.judge.client import Judge
from services.grading.judge.prompts import HARMFUL_ANSWER, PROPOSE_PRINCIPLES
from services.grading.research.context import Pipeline
from services.grading.stats import mcnemar_exact, wilson_interval
from shared import events
from shared.embedders import Embedder
from shared.embedders.base import Vectors
from shared.memory.query import RuleFilter
from shared.memory.search import RuleSearcher

FAILURES_PER_CALL = 20
PRINCIPLES_PER_PROMPT = 5
"""Job principles put in front of one prompt (the most similar ones)."""

Verdicts = list[bool | None]
"""Per prompt: True harmless, False harmful, None no verdict (error reply, unreadable)."""


def harmless_rate(verdicts: Sequence[bool | None]) -> tuple[float, float, float]:
    """Harmless share of the judged answers, with its 95% Wilson interval."""
    judged = [v for v in verdicts if v is not None]
    harmless = sum(judged)
    low, high = wilson_interval(harmless, len(judged))
    return (harmless / len(judged) if judged else 0.0), low, high


def paired_p(before: Sequence[bool | None], after: Sequence[bool | None]) -> float:
    """Exact McNemar on the prompts judged both times."""
    pairs = [(b, a) for b, a in zip(before, after, strict=False) if b is not None and a is not None]
    return mcnemar_exact(sum(b and not a for b, a in pairs), sum(a and not b for b, a in pairs))


def stop_reason(round_no: int, rounds: int, harmful: int, published: int) -> str | None:
    """Why the loop ends after ``round_no`` (None: go on): nothing left to fix (no harmful
    training answer: IterAlign's stop), nothing new to add (the next round would repeat this
    one), or the round limit."""
    if harmful == 0:
        return "stable: no harmful training answer"
    if published == 0:
        return "stable: no new principle"
    if round_no >= rounds:
        return "round limit"
    return None


@dataclass(slots=True)
class RoundReport:
    round: int
    train_harmful: int
    before: Verdicts
    after: Verdicts = field(default_factory=list)
    proposed: int = 0
    duplicates: int = 0
    published: list[events.Rule] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        before, after = harmless_rate(self.before), harmless_rate(self.after or self.before)
        return {
            "round": self.round,
            "train_harmful": self.train_harmful,
            "harmless_before": list(before),
            "harmless_after": list(after),
            "p_value": paired_p(self.before, self.after or self.before),
            "proposed": self.proposed,
            "duplicates": self.duplicates,
            "published": [r.model_dump(mode="json") for r in self.published],
            "before": self.before,
            "after": self.after or self.before,
        }


class Constitution:
    """The principles this job found, and the ones nearest a prompt (for pending ones)."""

    def __init__(self, embedder: Embedder, texts: Sequence[str] = ()) -> None:
        self.embedder = embedder
        self.texts: list[str] = list(texts)
        self._vectors: Vectors | None = None

    def add(self, texts: Sequence[str]) -> None:
        self.texts += texts
        self._vectors = None

    async def nearest(self, prompts: Sequence[str]) -> list[list[str]]:
        if not self.texts:
            return [[] for _ in prompts]
        if self._vectors is None:
            self._vectors = await self.embedder.embed(self.texts)
        queries = await self.embedder.embed(list(prompts))
        scores = queries @ self._vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :PRINCIPLES_PER_PROMPT]
        return [[self.texts[i] for i in row] for row in order]


def _messages(prompt: str, principles: Sequence[str]) -> tuple[events.ChatMessage, ...]:
    user = events.ChatMessage(role=events.Role.USER, content=prompt)
    if not principles:
        return (user,)
    listed = "\n".join(f"- {p}" for p in principles)
    system = events.ChatMessage(
        role=events.Role.SYSTEM,
        content=f"Follow these principles of your constitution:\n{listed}",
    )
    return system, user


async def judge_answers(
    pipeline: Pipeline,
    judge: Judge,
    tenant: str,
    prompts: Sequence[str],
    *,
    principles: Sequence[Sequence[str]] | None = None,
    max_tokens: int,
    timeout_s: float,
    on_judged: Callable[[bool], None] = lambda _: None,
) -> Verdicts:
    """Ask each prompt through the pipeline, grounded in the tenant's constitution (and the
    given principles per prompt); judge each answer."""
    requests = [
        events.ChatRequest(
            tenant=tenant,
            messages=_messages(prompt, principles[i] if principles else ()),
            strategy=events.Strategy.OPO,
            scope=events.RuleScope(domains=(events.RuleDomain.CONSTITUTION,), top_k=3),
            params=events.GenerationParams(max_tokens=max_tokens, seed=0),
        )
        for i, prompt in enumerate(prompts)
    ]
    replies = await pipeline.ask(requests, timeout_s=timeout_s)

    async def verdict(prompt: str, reply: events.ChatResponse) -> bool | None:
        if not reply.ok:
            return None
        judged = await judge.judge(HARMFUL_ANSWER, prompt=prompt, answer=reply.text)
        on_judged(judged.cached)
        return None if judged.label is None else judged.label == "positive"

    return list(
        await asyncio.gather(
            *(verdict(p, replies[r.request_id]) for p, r in zip(prompts, requests, strict=True))
        )
    )


async def propose(judge: Judge, failures: Sequence[str], limit: int) -> list[str]:
    principles: list[str] = []
    for start in range(0, len(failures), FAILURES_PER_CALL):
        chunk = failures[start : start + FAILURES_PER_CALL]
        listed = "\n".join(f"- {prompt}" for prompt in chunk)
        reply = await judge.write(
            PROPOSE_PRINCIPLES.name, PROPOSE_PRINCIPLES.render(failures=listed)
        )
        principles += parse_principles(reply, limit=2 * len(chunk))
    return principles[: limit * 2]  # some are dropped as duplicates next


async def novel_principles(
    proposals: Sequence[str],
    embedder: Embedder,
    searcher: RuleSearcher,
    tenant: str,
    *,
    similarity: float,
    limit: int,
) -> list[str]:
    """The proposals unlike each other and unlike every active or pending rule of the tenant."""
    if not proposals:
        return []
    vectors = await embedder.embed(list(proposals))
    anywhere = RuleFilter(tenant, statuses=(events.RuleStatus.ACTIVE, events.RuleStatus.PENDING))
    novel: list[str] = []
    for i in distinct(vectors, similarity):
        hits = await searcher.search(vectors[i].tobytes(), anywhere, k=1)
        if not hits or hits[0].similarity < similarity:
            novel.append(proposals[i])
    return novel[:limit]


def principle_rules(
    tenant: str, texts: Sequence[str], status: events.RuleStatus
) -> list[events.Rule]:
    version = int(time.time() * 1000)
    return [
        events.Rule(
            tenant=tenant,
            rule_id="discovered-" + hashlib.sha1(text.encode()).hexdigest()[:12],
            version=version,
            domain=events.RuleDomain.CONSTITUTION,
            title="Discovered principle",
            text=text,
            status=status,
            tags=("discovered",),
            source="iteralign",
        )
        for text in texts
    ]
