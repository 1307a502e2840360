"""``constitution discover``: IterAlign's rounds as a resumable job.

Each finished round is checkpointed (its report and the principles found so far), so a job
that is stopped resumes at the next round. A round's held-out answers after its principles are
the next round's "before", so held-out prompts are asked once per round.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from pydantic import JsonValue

from services.grading.datasets import DatasetError
from services.grading.discovery.loop import (
    Constitution,
    RoundReport,
    judge_answers,
    novel_principles,
    principle_rules,
    propose,
    stop_reason,
)
from services.grading.discovery.principles import split
from services.grading.research.context import JobContext, ResearchError
from services.grading.research.seeds import read_queries
from shared import events


async def discover_rounds(
    ctx: JobContext, spec: events.ConstitutionDiscoverSpec
) -> dict[str, JsonValue]:
    judge = ctx.need_judge()
    try:
        prompts = await asyncio.to_thread(read_queries, ctx.data_root, ctx.tenant, spec.prompts)
    except DatasetError as exc:
        raise ResearchError(str(exc)) from exc
    if len(prompts) < 2:
        raise ResearchError(f"{spec.prompts}: at least 2 prompts needed (training and held-out)")
    train, held_out = split(prompts, spec.holdout, spec.seed)
    embedder = await ctx.embedder()
    searcher = ctx.searcher(embedder)
    stored = await ctx.checkpoints.get("rounds")
    rounds: list[dict[str, Any]] = (
        [r for r in stored if isinstance(r, dict)] if isinstance(stored, list) else []
    )
    pending = spec.status is events.RuleStatus.PENDING
    constitution = Constitution(embedder, [t for r in rounds for t in _texts(r)] if pending else ())

    async def answers(asked: list[str]) -> list[bool | None]:
        return await judge_answers(
            ctx.pipeline,
            judge,
            ctx.tenant,
            asked,
            principles=await constitution.nearest(asked),
            max_tokens=spec.max_tokens,
            timeout_s=ctx.timeout_s,
            on_judged=ctx.tally.add,
        )

    reason = rounds[-1]["stop"] if rounds and rounds[-1].get("stop") else None
    while reason is None:
        number = len(rounds) + 1
        await ctx.report(f"round {number}: answering and judging", number - 1, spec.rounds)
        before: list[bool | None]
        if rounds:
            before = list(rounds[-1]["after"])
            train_verdicts = await answers(train)
        else:
            verdicts = await answers([*held_out, *train])
            before, train_verdicts = verdicts[: len(held_out)], verdicts[len(held_out) :]
        failures = [p for p, v in zip(train, train_verdicts, strict=True) if v is False]
        report = RoundReport(number, len(failures), before)
        if failures:
            await ctx.report(
                f"round {number}: proposing principles for {len(failures)} harmful answers",
                number - 1,
                spec.rounds,
            )
            proposals = await propose(judge, failures, spec.max_principles)
            novel = await novel_principles(
                proposals,
                embedder,
                searcher,
                ctx.tenant,
                similarity=spec.similarity,
                limit=spec.max_principles,
            )
            report.proposed, report.duplicates = len(proposals), len(proposals) - len(novel)
            report.published = principle_rules(ctx.tenant, novel, spec.status)
        if report.published:
            await ctx.pipeline.publish_rules(
                [events.RuleUpsert(rule=r) for r in report.published],
                wait=True,
                timeout_s=ctx.timeout_s,
            )
            if pending:
                constitution.add([r.text for r in report.published])
            await ctx.report(f"round {number}: held-out prompts again", number - 1, spec.rounds)
            report.after = await answers(held_out)
        reason = stop_reason(number, spec.rounds, report.train_harmful, len(report.published))
        entry = {**report.to_json(), "stop": reason}
        rounds.append(entry)
        await ctx.checkpoints.put("rounds", cast(JsonValue, rounds))
    first, last = rounds[0], rounds[-1]
    return {
        "rounds": [{k: v for k, v in r.items() if k not in ("before", "after")} for r in rounds],
        "rounds_run": len(rounds),
        "stop_reason": reason,
        "train": len(train),
        "held_out": len(held_out),
        "harmless_start": first["harmless_before"],
        "harmless_end": last["harmless_after"],
        "principles": sum(len(r["published"]) for r in rounds),
        "status": spec.status.value,
    }


def _texts(round_entry: dict[str, Any]) -> list[str]:
    return [str(rule["text"]) for rule in round_entry.get("published", [])]
