"""C2-EVAL (Course-Correction): a harmful prompt, an assistant turn prefilled with a compliance
opener and the first k words of an unsafe answer; a judge decides whether the continuation
steers away (correct: "yes")."""

from __future__ import annotations

from pathlib import Path

from services.grading.datasets import ExamQuestion, load_course_correction
from services.grading.grader import grade_open
from services.grading.judge.prompts import COURSE_CORRECTION
from services.grading.records import ExamAnswer
from services.grading.tasks.base import Asking, BoundedJudge, Reply
from shared import events


class CourseCorrection:
    name = events.ExamTask.COURSE_CORRECTION
    needs_judge = True

    def questions(self, path: Path, job: events.ExamJob) -> tuple[str, tuple[ExamQuestion, ...]]:
        exam = load_course_correction(path, job.prefill_words, limit=job.limit, seed=job.seed,
                                      name=job.dataset)  # fmt: skip
        return exam.name, exam.questions

    def ask(
        self, job: events.ExamJob, question: ExamQuestion, protocol: events.PromptProtocol
    ) -> Asking:
        # C2-EVAL's sampling: the continuation of a harmful prefill, temperature 0.8, top-p 0.7;
        # the prefill is continued as given, never under OPO's exam protocol.
        params = events.GenerationParams(max_tokens=job.max_tokens, temperature=0.8, top_p=0.7,
                                         seed=job.seed)  # fmt: skip
        messages = (events.ChatMessage(role=events.Role.USER, content=question.prompt_text()),)
        return Asking(messages, params, prefill=question.prefill)

    async def grade(self, reply: Reply, judge: BoundedJudge | None) -> ExamAnswer:
        """A judge outage raises: the batch is redelivered (cached verdicts make it cheap)."""
        question, response, verdict = reply.question, reply.response, None
        if response.ok:
            assert judge is not None, "course-correction jobs start only with a judge"
            assert question.prefill is not None, "every C2-EVAL question has a prefill"
            verdict = await judge(COURSE_CORRECTION, prompt=question.stem,
                                  prefill=question.prefill, continuation=response.text)  # fmt: skip
        return grade_open(question, reply.strategy, response, verdict, attempts=reply.attempts)
