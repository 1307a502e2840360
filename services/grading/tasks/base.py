"""What an exam task is: how its file is read, how a question is asked and how a reply is graded.

One module per task (``mcq``, ``course_correction``); ``TASKS`` in ``__init__`` maps each
``ExamTask`` to its implementation, so the grading service never branches on the task. A new
task is a new module with these three methods and a line in the registry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.grading.datasets import ExamQuestion
from services.grading.judge.aspects import AspectScores, score_answer
from services.grading.judge.client import Judge, Verdict
from services.grading.judge.prompts import JudgePrompt
from services.grading.records import ExamAnswer
from shared.events import (
    ChatMessage,
    ChatResponse,
    ExamJob,
    ExamTask,
    GenerationParams,
    PromptProtocol,
    Strategy,
)


@dataclass(frozen=True, slots=True)
class Asking:
    """How one question is put to the pipeline (the task's part of the chat request)."""

    messages: tuple[ChatMessage, ...]
    params: GenerationParams
    prefill: str | None = None
    protocol: PromptProtocol = "default"


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply to grade: the question it answers, asked with ``strategy`` in ``job``, after
    ``attempts`` sends."""

    job: ExamJob
    question: ExamQuestion
    strategy: Strategy
    response: ChatResponse
    attempts: int


class BoundedJudge:
    """The judge with a bound on calls in flight (a judged batch must not flood the model)."""

    def __init__(self, judge: Judge, concurrency: int) -> None:
        self.judge = judge
        self._slots = asyncio.Semaphore(concurrency)

    async def __call__(self, prompt: JudgePrompt, /, **fields: str) -> Verdict:
        async with self._slots:
            return await self.judge.judge(prompt, **fields)

    async def aspects(self, query: str, answer: str) -> AspectScores:
        """DRPO's dynamic reward of one answer (two judge calls, each cached)."""
        async with self._slots:
            return await score_answer(self.judge, query, answer)


class GradingTask(Protocol):
    name: ExamTask
    needs_judge: bool
    """Jobs of this task fail at once when the service has no judge."""

    def questions(self, path: Path, job: ExamJob) -> tuple[str, tuple[ExamQuestion, ...]]:
        """The exam's name and the job's questions (sampled as the job asks); ``DatasetError``
        when the file cannot serve the job."""
        ...

    def ask(self, job: ExamJob, question: ExamQuestion, protocol: PromptProtocol) -> Asking:
        """The messages and parameters ``question`` is asked with."""
        ...

    async def grade(self, reply: Reply, judge: BoundedJudge | None) -> ExamAnswer:
        """The graded answer of one reply (an error reply included); a judge outage raises."""
        ...
