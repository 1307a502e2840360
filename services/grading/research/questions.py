"""``exam generate``: OPO's question generation as a job. Active rules of the tenant are
sampled, the deployed model writes one question per rule through the pipeline, the judge keeps
the ones that pass OPO's four quality points, and the exam is written as ``exam.csv`` in the
job's output folder (``exam run`` reads it back by that name)."""

from __future__ import annotations

import asyncio

from pydantic import JsonValue

from services.grading.datasets import DatasetError, ExamQuestion, dataset_path, load_exam
from services.grading.questiongen.generate import generate_questions, write_exam
from services.grading.questiongen.sources import sample_rules
from services.grading.research.context import JobContext, ResearchError
from shared import events


async def generate_exam(ctx: JobContext, spec: events.QuestionGenerateSpec) -> dict[str, JsonValue]:
    judge = ctx.need_judge()
    rules = await sample_rules(ctx.redis, ctx.key_prefix, ctx.tenant, spec.count, spec.seed)
    if not rules:
        raise ResearchError(f"tenant {ctx.tenant!r} has no active rules in the memory")
    shots: tuple[ExamQuestion, ...] = ()
    if spec.examples is not None:
        try:
            path = dataset_path(ctx.data_root, ctx.tenant, spec.examples)
            shots = (await asyncio.to_thread(load_exam, path, name=spec.examples)).questions
        except DatasetError as exc:
            raise ResearchError(str(exc)) from exc
    await ctx.report(f"the model writes {len(rules)} questions, the judge checks them", 0, 1)
    report = await generate_questions(
        ctx.pipeline,
        judge,
        ctx.tenant,
        rules,
        shots,
        shots=spec.shots,
        seed=spec.seed,
        max_tokens=spec.max_tokens,
        timeout_s=ctx.timeout_s,
    )
    folder = ctx.output_folder
    folder.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(write_exam, folder / "exam.csv", report.kept)
    return {
        "output": ctx.output_name(folder / "exam.csv"),
        "rules": len(rules),
        "kept": len(report.kept),
        "rejected": report.rejected,
        "unjudged": report.unjudged,
        "unparseable": report.unparseable,
        "errors": report.errors,
    }
