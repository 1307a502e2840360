"""Aspect-scored open-ended evaluation (DRPO's dynamic reward as an exam): each query is
answered freely; the judge picks the 2-5 aspects that matter for it and scores the answer 1-5 on
each. Results: per-aspect means and the mean reward with intervals; strategies compared on the
reward per query (paired)."""

from __future__ import annotations

import random
from pathlib import Path

from services.grading.datasets import DatasetError, ExamQuestion
from services.grading.grader import grade_scored
from services.grading.records import ExamAnswer
from services.grading.research.seeds import read_query_file
from services.grading.tasks.base import Asking, BoundedJudge, Reply
from shared import events

GOOD = 4.0
"""An answer whose reward (mean aspect score) reaches this counts as good (the accuracy)."""


class Aspects:
    name = events.ExamTask.ASPECTS
    needs_judge = True

    def questions(self, path: Path, job: events.ExamJob) -> tuple[str, tuple[ExamQuestion, ...]]:
        queries = read_query_file(path, job.dataset)
        if not queries:
            raise DatasetError(f"{job.dataset}: no queries")
        numbered = list(enumerate(queries, 1))
        if job.limit is not None and job.limit < len(numbered):
            numbered = sorted(random.Random(job.seed).sample(numbered, job.limit))
        return path.stem, tuple(
            ExamQuestion(question_id=f"q{n}", stem=query, answer="good", open_ended=True)
            for n, query in numbered
        )

    def ask(
        self, job: events.ExamJob, question: ExamQuestion, protocol: events.PromptProtocol
    ) -> Asking:
        params = events.GenerationParams(max_tokens=job.max_tokens, seed=job.seed)
        return Asking((events.ChatMessage(role=events.Role.USER, content=question.stem),), params)

    async def grade(self, reply: Reply, judge: BoundedJudge | None) -> ExamAnswer:
        """Good (correct) when the reward reaches ``GOOD``; invalid when the judge's reply could
        not be read; a judge outage raises (the batch is redelivered, judgments are cached)."""
        question, response = reply.question, reply.response
        if not response.ok:
            return grade_scored(question, reply.strategy, response, None, attempts=reply.attempts)
        assert judge is not None, "aspects jobs start only with a judge"
        scored = await judge.aspects(question.stem, response.text)
        verdict = ("good" if scored.reward >= GOOD else "poor") if scored.scored else None
        answer = grade_scored(question, reply.strategy, response, verdict,
                              attempts=reply.attempts)  # fmt: skip
        if not scored.scored:
            return answer
        return answer.model_copy(update={"aspect_scores": scored.scores,
                                         "reward": scored.reward})  # fmt: skip
