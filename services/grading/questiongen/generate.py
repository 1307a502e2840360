"""Generate an exam from a tenant's own rules: ask the deployed model (through the pipeline)
for one question per rule, keep the well-formed ones the judge passes, write them as an exam."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.grading.datasets import ExamQuestion
from services.grading.judge.client import Judge
from services.grading.judge.prompts import QUESTION_QUALITY
from services.grading.questiongen.prompts import generation_prompt, parse_generated
from services.grading.questiongen.sources import SourceRule
from services.grading.research.context import Pipeline
from shared import events

GLOBAL = events.GLOBAL_JURISDICTION


@dataclass(frozen=True, slots=True)
class GeneratedQuestion:
    question: ExamQuestion
    source: SourceRule


@dataclass(slots=True)
class GenerationReport:
    kept: list[GeneratedQuestion] = field(default_factory=list)
    unparseable: int = 0
    """Replies not in the exam format."""
    rejected: int = 0
    """Well-formed questions the judge failed."""
    unjudged: int = 0
    """Questions whose verdict could not be read (dropped too)."""
    errors: int = 0
    """Error replies from the pipeline."""


def generation_requests(
    tenant: str,
    rules: Sequence[SourceRule],
    examples: Sequence[ExamQuestion],
    *,
    shots: int,
    max_tokens: int,
    seed: int,
) -> list[events.ChatRequest]:
    """One raw request per rule, each with its own seeded draw of few-shot examples."""
    draw = random.Random(seed)
    usable = [e for e in examples if e.principle]
    requests = []
    for i, rule in enumerate(rules):
        few = draw.sample(usable, min(shots, len(usable)))
        prompt = generation_prompt(rule.text, few)
        params = events.GenerationParams(max_tokens=max_tokens, temperature=0.7, seed=seed + i)
        requests.append(
            events.ChatRequest(
                tenant=tenant,
                messages=(events.ChatMessage(role=events.Role.USER, content=prompt),),
                strategy=events.Strategy.RAW,
                params=params,
                metadata={"source_rule": rule.ref},
            )
        )
    return requests


async def generate_questions(
    client: Pipeline,
    judge: Judge,
    tenant: str,
    rules: Sequence[SourceRule],
    examples: Sequence[ExamQuestion],
    *,
    shots: int = 3,
    max_tokens: int = 512,
    seed: int = 0,
    timeout_s: float = 3600.0,
    on_step: Callable[[], None] | None = None,
) -> GenerationReport:
    requests = generation_requests(tenant, rules, examples, shots=shots,
                                   max_tokens=max_tokens, seed=seed)  # fmt: skip
    replies = await client.ask(requests, timeout_s=timeout_s,
                               on_response=lambda _: on_step() if on_step else None)  # fmt: skip
    report = GenerationReport()
    for n, (request, rule) in enumerate(zip(requests, rules, strict=True), start=1):
        reply = replies[request.request_id]
        parsed = parse_generated(reply.text) if reply.ok else None
        if not reply.ok:
            report.errors += 1
        elif parsed is None:
            report.unparseable += 1
        else:
            stem, options, answer = parsed
            question = ExamQuestion(
                question_id=f"gen{n}", stem=stem, options=options, answer=answer,
                principle=rule.text,
                location=rule.jurisdiction if rule.jurisdiction != GLOBAL else None,
            )  # fmt: skip
            verdict = await judge.judge(QUESTION_QUALITY, rule=rule.text,
                                        question=question.prompt_text(), answer=answer)  # fmt: skip
            if verdict.label == "pass":
                report.kept.append(GeneratedQuestion(question, rule))
            elif verdict.label is None:
                report.unjudged += 1
            else:
                report.rejected += 1
        if on_step is not None:
            on_step()
    return report


def write_exam(path: Path, questions: Sequence[GeneratedQuestion]) -> None:
    """OPO's exam CSV plus ``source_rules`` (rule id @ version): ``exam run`` reads it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "A", "B", "C", "D", "answer", "principle", "location",
                         "source_rules"])  # fmt: skip
        for item in questions:
            q = item.question
            writer.writerow([q.question_id, q.stem, *q.options.values(), q.answer, q.principle,
                             q.location or "", item.source.ref])  # fmt: skip
