"""One round of principle discovery, measured on held-out prompts.

1. Ask every red-team prompt through the pipeline (OPO over the tenant's constitution rules) and
   have the judge label each answer harmless or harmful.
2. For the training prompts answered harmfully, ask the strong model for specific principles.
3. Drop principles similar to each other or to rules already in the memory.
4. Publish the rest as rule events (domain constitution, tagged ``discovered``, active or
   pending) and wait until they are servable.
5. Ask the held-out prompts again: harmlessness before vs after, paired.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.grading.discovery.principles import distinct, parse_principles, split
from services.grading.judge.client import Judge
from services.grading.judge.prompts import HARMFUL_ANSWER, PROPOSE_PRINCIPLES
from services.grading.stats import mcnemar_exact, wilson_interval
from shared import events
from shared.client import AlignstreamClient
from shared.embedders import Embedder
from shared.memory.query import RuleFilter
from shared.memory.search import RuleSearcher

FAILURES_PER_CALL = 20


@dataclass(slots=True)
class DiscoveryReport:
    train: int
    held_out: int
    train_harmful: int = 0
    before: list[bool | None] = field(default_factory=list)
    """Held-out verdicts before (True: harmless; None: no verdict)."""
    after: list[bool | None] = field(default_factory=list)
    proposed: int = 0
    duplicates: int = 0
    published: list[events.Rule] = field(default_factory=list)

    def rate(self, verdicts: Sequence[bool | None]) -> tuple[float, float, float]:
        """Harmless share of the judged answers, with its 95% Wilson interval."""
        judged = [v for v in verdicts if v is not None]
        harmless = sum(judged)
        low, high = wilson_interval(harmless, len(judged))
        return (harmless / len(judged) if judged else 0.0), low, high

    @property
    def p_value(self) -> float:
        """Exact McNemar on the held-out prompts judged both times."""
        pairs = [(b, a) for b, a in zip(self.before, self.after, strict=False)
                 if b is not None and a is not None]  # fmt: skip
        return mcnemar_exact(sum(b and not a for b, a in pairs), sum(a and not b for b, a in pairs))


async def judge_answers(
    client: AlignstreamClient,
    judge: Judge,
    tenant: str,
    prompts: Sequence[str],
    *,
    max_tokens: int,
    timeout_s: float,
) -> list[bool | None]:
    """Ask each prompt through the pipeline, grounded in the tenant's constitution; judge each
    answer. True: harmless, False: harmful, None: error reply or unreadable verdict."""
    requests = [
        events.ChatRequest(
            tenant=tenant,
            messages=(events.ChatMessage(role=events.Role.USER, content=prompt),),
            strategy=events.Strategy.OPO,
            scope=events.RuleScope(domains=(events.RuleDomain.CONSTITUTION,), top_k=3),
            params=events.GenerationParams(max_tokens=max_tokens, seed=0),
        )
        for prompt in prompts
    ]
    replies = await client.ask(requests, timeout_s=timeout_s)

    async def verdict(prompt: str, reply: events.ChatResponse) -> bool | None:
        if not reply.ok:
            return None
        judged = await judge.judge(HARMFUL_ANSWER, prompt=prompt, answer=reply.text)
        return None if judged.label is None else judged.label == "positive"

    return list(await asyncio.gather(
        *(verdict(p, replies[r.request_id]) for p, r in zip(prompts, requests, strict=True))
    ))  # fmt: skip


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


async def discover(
    client: AlignstreamClient,
    judge: Judge,
    embedder: Embedder,
    searcher: RuleSearcher,
    tenant: str,
    prompts: Sequence[str],
    *,
    holdout: float = 0.3,
    seed: int = 0,
    status: events.RuleStatus = events.RuleStatus.PENDING,
    max_principles: int = 20,
    similarity: float = 0.85,
    max_tokens: int = 256,
    timeout_s: float = 3600.0,
    on_stage: Callable[[str], None] = lambda _: None,
) -> DiscoveryReport:
    train, held_out = split(prompts, holdout, seed)
    report = DiscoveryReport(train=len(train), held_out=len(held_out))
    on_stage("answering and judging every prompt")
    verdicts = await judge_answers(client, judge, tenant, [*held_out, *train],
                                   max_tokens=max_tokens, timeout_s=timeout_s)  # fmt: skip
    report.before = verdicts[: len(held_out)]
    failures = [p for p, v in zip(train, verdicts[len(held_out) :], strict=True) if v is False]
    report.train_harmful = len(failures)
    if not failures:
        report.after = report.before
        return report

    on_stage(f"proposing principles for {len(failures)} harmful answers")
    proposals = await propose(judge, failures, max_principles)
    report.proposed = len(proposals)
    novel: list[str] = []
    if proposals:
        vectors = await embedder.embed(proposals)
        anywhere = RuleFilter(
            tenant, statuses=(events.RuleStatus.ACTIVE, events.RuleStatus.PENDING)
        )
        for i in distinct(vectors, similarity):
            hits = await searcher.search(vectors[i].tobytes(), anywhere, k=1)
            if not hits or hits[0].similarity < similarity:
                novel.append(proposals[i])
    novel = novel[:max_principles]
    report.duplicates = report.proposed - len(novel)

    version = int(time.time() * 1000)
    report.published = [
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
        for text in novel
    ]
    if report.published:
        on_stage(f"publishing {len(report.published)} principles ({status.value})")
        await client.publish_rules([events.RuleUpsert(rule=r) for r in report.published],
                                   wait=True, timeout_s=timeout_s)  # fmt: skip
    on_stage("answering and judging the held-out prompts again")
    report.after = await judge_answers(client, judge, tenant, held_out,
                                       max_tokens=max_tokens, timeout_s=timeout_s)  # fmt: skip
    return report
