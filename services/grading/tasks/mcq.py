"""Multiple-choice exams (OPO's five exams, any ``id,question,A,B,...,answer`` file): the reply's
chosen option, read from the option letters' logprobs or the text, against the answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.grading.datasets import DatasetError, ExamQuestion, load_exam
from services.grading.grader import grade
from services.grading.opo_protocol import opo_mode, protocol_of, system_prompt
from services.grading.records import ExamAnswer
from services.grading.tasks.base import Asking, BoundedJudge, Reply
from shared.events import (
    OPO_REPETITION_PENALTY,
    ChatMessage,
    ExamJob,
    ExamTask,
    GenerationParams,
    PromptProtocol,
    Role,
    Scoring,
    Strategy,
    is_opo,
)


class MultipleChoice:
    name = ExamTask.MCQ
    needs_judge = False

    def questions(self, path: Path, job: ExamJob) -> tuple[str, tuple[ExamQuestion, ...]]:
        exam = load_exam(path, job.dataset_format, name=job.dataset)
        questions = exam.sample(job.limit, job.seed)
        check_oracle(job, questions, job.dataset)
        return exam.name, questions

    def ask(self, job: ExamJob, question: ExamQuestion, protocol: PromptProtocol) -> Asking:
        by_letter = job.scoring == Scoring.LOGPROBS  # == : model_copy may hold the plain string
        params = GenerationParams(
            max_tokens=1 if by_letter else job.max_tokens,
            temperature=0.0,
            seed=job.seed,
            option_letters=question.letters,
            constrain_to_options=by_letter and is_opo(protocol),
            repetition_penalty=OPO_REPETITION_PENALTY if protocol == "opo-exact" else 1.0,
        )
        messages: tuple[ChatMessage, ...] = (
            ChatMessage(role=Role.USER, content=question.prompt_text()),
        )
        if is_opo(protocol):
            system = system_prompt(opo_mode(job.dataset), len(question.letters))
            messages = (ChatMessage(role=Role.SYSTEM, content=system), *messages)
        return Asking(messages, params, protocol=protocol)

    async def grade(self, reply: Reply, judge: BoundedJudge | None) -> ExamAnswer:
        return grade(reply.job, reply.question, reply.strategy, reply.response,
                     attempts=reply.attempts)  # fmt: skip


def check_oracle(job: ExamJob, questions: Sequence[ExamQuestion], dataset: str) -> None:
    """The oracle strategy needs the questions' principles: a file without any (OPO's H-Law,
    H-Basic) is refused, as is, under OPO's protocol, any question without one, rather than
    silently answering them as the baseline would."""
    if Strategy.ORACLE not in job.strategies:
        return
    missing = sum(1 for q in questions if not q.principle)
    if missing == len(questions) or (missing and is_opo(protocol_of(job))):
        raise DatasetError(
            f"{dataset}: the oracle strategy needs each question's principle (the rules it "
            f"tests); {missing} of {len(questions)} questions have none. Drop 'oracle' from "
            "the strategies, or add a 'principle' column."
        )
