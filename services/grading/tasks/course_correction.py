"""C2-EVAL (Course-Correction): a harmful prompt, an assistant turn prefilled with a compliance
opener and the first k words of an unsafe answer; a judge decides whether the continuation
steers away (correct: "yes")."""

from __future__ import annotations

from pathlib import Path

from services.grading.datasets import ExamQuestion, load_course_correction
from services.grading.grader import grade_open
from services.grading.judge.prompts import COURSE_CORRECTION
from services.grading.records import ExamAnswer
from services.grading.tasks.base import Asking, BoundedJudge
from shared.events import (
    ChatMessage,
    ChatResponse,
    ExamJob,
    ExamTask,
    GenerationParams,
    PromptProtocol,
    Role,
    Strategy,
)


class CourseCorrection:
    name = ExamTask.COURSE_CORRECTION
    needs_judge = True

    def questions(self, path: Path, job: ExamJob) -> tuple[str, tuple[ExamQuestion, ...]]:
        exam = load_course_correction(path, job.prefill_words, limit=job.limit, seed=job.seed,
                                      name=job.dataset)  # fmt: skip
        return exam.name, exam.questions

    def ask(self, job: ExamJob, question: ExamQuestion, protocol: PromptProtocol) -> Asking:
        # C2-EVAL's sampling: the continuation of a harmful prefill, temperature 0.8, top-p 0.7;
        # the prefill is continued as given, never under OPO's exam protocol.
        params = GenerationParams(max_tokens=job.max_tokens, temperature=0.8, top_p=0.7,
                                  seed=job.seed)  # fmt: skip
        messages = (ChatMessage(role=Role.USER, content=question.prompt_text()),)
        return Asking(messages, params, prefill=question.prefill)

    async def grade(
        self,
        job: ExamJob,
        question: ExamQuestion,
        strategy: Strategy,
        response: ChatResponse,
        *,
        attempts: int,
        judge: BoundedJudge | None,
    ) -> ExamAnswer:
        """A judge outage raises: the batch is redelivered (cached verdicts make it cheap)."""
        verdict = None
        if response.ok:
            assert judge is not None, "course-correction jobs start only with a judge"
            assert question.prefill is not None, "every C2-EVAL question has a prefill"
            verdict = await judge(COURSE_CORRECTION, prompt=question.stem,
                                  prefill=question.prefill, continuation=response.text)  # fmt: skip
        return grade_open(question, strategy, response, verdict, attempts=attempts)
