"""``prompts optimize``: DRPO's search run on the deployed pipeline.

Each candidate system prompt becomes a prompt set of the tenant (the start set's in-context
examples, a new system prompt), so the deployed model answers with it through Kafka like any
DRPO request: no restart, no second engine. The judge's dynamic reward scores the answers; the
optimizer model rewrites the prompt. Each level's best prompt is also scored on the held-out
queries (mean reward, 95% interval). The prompt with the best held-out reward is loaded as
``output_set`` and the trace is returned in DRPO's ``{"level i": {"Prompt", "Evaluation of the
prompt"}}`` shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue

from services.grading.datasets import DatasetError
from services.grading.judge.aspects import AspectScores, score_answer
from services.grading.judge.prompts import OPTIMIZE_PROMPT
from services.grading.research.context import JobContext, ResearchError
from services.grading.research.drpo.search import Evaluation, Node, beam_search
from services.grading.research.seeds import read_queries
from services.grading.stats import mean_interval
from shared import events
from shared.prompt_sets import PromptSet, StoredPromptSet

FEEDBACK_SHOWN = 3
"""Evaluated answers the optimizer sees per rewrite."""
MAX_PROMPT_CHARS = 20_000
JUDGE_CONCURRENCY = 16


def parse_rewrite(text: str) -> str | None:
    """The optimizer's ``new_system_prompt`` (a JSON reply, code fences tolerated)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    prompt = data.get("new_system_prompt") if isinstance(data, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    return prompt.replace("\\n", "\n").strip()[:MAX_PROMPT_CHARS]


def split_queries(
    queries: Sequence[str], holdout: float, limit: int, seed: int
) -> tuple[list[str], list[str]]:
    order = list(dict.fromkeys(queries))  # a query listed twice is one query
    random.Random(seed).shuffle(order)
    cut = max(1, min(len(order) - 1, round(len(order) * holdout)))
    return order[cut:], order[:cut][:limit]


class PromptSearch:
    """The search's side effects: candidate prompt sets, answers, judgments, checkpoints."""

    def __init__(
        self,
        ctx: JobContext,
        spec: events.PromptOptimizeSpec,
        start: StoredPromptSet,
        train: list[str],
        held_out: list[str],
    ) -> None:
        self.ctx, self.spec, self.start = ctx, spec, start
        self.train, self.held_out = train, held_out
        self._slots = asyncio.Semaphore(JUDGE_CONCURRENCY)
        self.candidates: set[str] = set()

    def level_queries(self, level: int) -> list[str]:
        """The training queries of a level: the next ``queries_per_level`` in a cycle."""
        n, per = len(self.train), self.spec.queries_per_level
        return [self.train[(level * per + i) % n] for i in range(min(per, n))]

    @property
    def _set_prefix(self) -> str:
        """Names of this job's candidate sets start with this: a fixed-length tag of the whole
        job id, so no other job's names can share it (job ``j1``'s clean-up deleted the sets
        of ``j1-x``, and ids alike in their first 40 characters shared one prefix)."""
        return f"drpo-{hashlib.sha256(self.ctx.job.job_id.encode()).hexdigest()[:16]}-"

    def set_name(self, prompt: str) -> str:
        return self._set_prefix + hashlib.sha256(prompt.encode()).hexdigest()[:16]

    async def _load(self, name: str, prompt: str) -> None:
        prompt_set = PromptSet(name=name, system=prompt, examples=self.start.prompt_set.examples)
        await self.ctx.prompt_sets.put(
            prompt_set, self.start.vectors, self.start.embedder, owner=self.ctx.tenant
        )

    async def answer_and_score(self, prompt: str, queries: list[str]) -> list[AspectScores]:
        name = self.set_name(prompt)
        if name not in self.candidates:
            await self._load(name, prompt)
            self.candidates.add(name)
        requests = [
            events.ChatRequest(
                tenant=self.ctx.tenant,
                messages=(events.ChatMessage(role=events.Role.USER, content=query),),
                strategy=events.Strategy.DRPO,
                prompt_set=name,
                examples_k=self.spec.examples_k,
                params=events.GenerationParams(
                    max_tokens=self.spec.max_tokens, seed=self.spec.seed
                ),
                metadata={"research_job": self.ctx.job.job_id},
            )
            for query in queries
        ]
        replies = await self.ctx.pipeline.ask(requests, timeout_s=self.ctx.timeout_s)
        judge = self.ctx.need_judge()

        async def scored(query: str, request: events.ChatRequest) -> AspectScores:
            reply = replies[request.request_id]
            if not reply.ok:
                return AspectScores(query, reply.text)
            async with self._slots:
                result = await score_answer(judge, query, reply.text)
            self.ctx.tally.count(model=result.judge_calls, cached=result.cached_calls)
            return result

        return list(
            await asyncio.gather(*(scored(q, r) for q, r in zip(queries, requests, strict=True)))
        )

    async def evaluate(self, prompt: str, level: int) -> Evaluation:
        results = await self.answer_and_score(prompt, self.level_queries(level))
        rewards = [r.reward for r in results if r.scored]
        return Evaluation(
            reward=sum(rewards) / len(rewards) if rewards else 0.0,
            feedback=tuple(r.feedback() for r in results[:FEEDBACK_SHOWN]),
            judge_calls=sum(r.judge_calls for r in results),
        )

    async def propose(self, node: Node, ancestry: Sequence[str], action: int) -> str | None:
        optimizer = self.ctx.need_optimizer()
        history = "\n".join(f"--- version {i + 1} ---\n{p}" for i, p in enumerate(ancestry[:-1]))
        rendered = OPTIMIZE_PROMPT.render(
            current=node.prompt,
            history=history or "(none)",
            feedback=json.dumps(list(node.feedback), indent=2, ensure_ascii=False),
            action=str(action),
            actions=str(self.spec.actions),
        )
        text, cached = await optimizer.write_cached(OPTIMIZE_PROMPT.name, rendered, max_tokens=2048)
        self.ctx.tally.add(cached)
        return parse_rewrite(text)

    async def held_out_reward(self, level: int, node: Node) -> dict[str, JsonValue]:
        """The node's reward on the held-out queries (checkpointed per level)."""
        name = f"heldout:{level}"
        stored = await self.ctx.checkpoints.get(name)
        if isinstance(stored, dict) and stored.get("node") == node.key:
            return stored
        results = await self.answer_and_score(node.prompt, self.held_out)
        rewards = [r.reward for r in results if r.scored]
        mean, low, high = mean_interval(rewards)
        value: dict[str, JsonValue] = {
            "node": node.key,
            "mean": round(mean, 4),
            "ci_low": round(low, 4),
            "ci_high": round(high, 4),
            "scored": len(rewards),
            "unscored": len(results) - len(rewards),
        }
        await self.ctx.checkpoints.put(name, value)
        return value

    async def node(self, key: str) -> Node | None:
        stored = await self.ctx.checkpoints.get(f"node:{key}")
        return Node.from_json(stored) if isinstance(stored, dict) else None

    async def save_node(self, node: Node) -> None:
        await self.ctx.checkpoints.put(f"node:{node.key}", node.to_json())

    async def drop_candidates(self) -> None:
        for name in await self.ctx.prompt_sets.names(self.ctx.tenant):
            if name.startswith(self._set_prefix):
                await self.ctx.prompt_sets.delete(self.ctx.tenant, name)


async def optimize_prompts(
    ctx: JobContext, spec: events.PromptOptimizeSpec
) -> dict[str, JsonValue]:
    ctx.need_judge()  # fail at once, before any work, when either model is missing
    ctx.need_optimizer()
    queries: list[str] = []
    try:
        for seed_file in spec.seeds:
            queries += await asyncio.to_thread(read_queries, ctx.data_root, ctx.tenant, seed_file)
    except DatasetError as exc:
        raise ResearchError(str(exc)) from exc
    if len(set(queries)) < 2:
        raise ResearchError("at least 2 distinct seed queries are needed (training and held-out)")
    train, held_out = split_queries(queries, spec.holdout, spec.holdout_limit, spec.seed)
    start = await ctx.prompt_sets.get_for(ctx.tenant, spec.start_set)
    if start is None:
        raise ResearchError(
            f"no prompt set {spec.start_set!r} to start from (alignstream prompts load)"
        )
    search = PromptSearch(ctx, spec, start, train, held_out)
    held: dict[int, dict[str, JsonValue]] = {}
    total_levels = spec.depth + 1

    async def on_level(level: int, beam: list[Node]) -> None:
        held[level] = await search.held_out_reward(level, beam[0])
        await ctx.report(
            f"level {level}: held-out reward {held[level]['mean']}", level + 1, total_levels
        )

    result = await beam_search(
        start.prompt_set.system,
        beam=spec.beam,
        actions=spec.actions,
        depth=spec.depth,
        evaluate=search.evaluate,
        propose=search.propose,
        memo=search,
        on_level=on_level,
    )
    bests = result.best_per_level
    best_level = max(range(len(bests)), key=lambda i: (_mean(held[i]), -i))
    best = bests[best_level]
    await ctx.prompt_sets.put(
        PromptSet(name=spec.output_set, system=best.prompt, examples=start.prompt_set.examples),
        start.vectors,
        start.embedder,
        owner=ctx.tenant,
    )
    await search.drop_candidates()
    levels: dict[str, JsonValue] = {
        f"level {i}": {
            "Prompt": node.prompt,
            "Evaluation of the prompt": {
                "train_reward": round(node.reward, 4),
                "held_out": held[i],
            },
        }
        for i, node in enumerate(bests)
    }
    folder = ctx.output_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drpo.json").write_text(json.dumps(levels, indent=2, ensure_ascii=False) + "\n")
    return {
        "output": ctx.output_name(folder / "drpo.json"),
        "levels": levels,
        "reward_start": held[0]["mean"],
        "reward_best": held[best_level]["mean"],
        "best_level": best_level,
        "best_prompt": best.prompt,
        "output_set": spec.output_set,
        "train_queries": len(train),
        "held_out_queries": len(held_out),
        "nodes_restored": result.restored,
        "judged_calls_saved": result.restored_judge_calls + ctx.tally.cached_calls,
        "model_calls": ctx.tally.model_calls,
    }


def _mean(value: dict[str, Any]) -> float:
    return float(value["mean"])
