"""An exam question as a chat request through the pipeline, per strategy."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from services.grading.datasets import DatasetError, ExamQuestion
from services.grading.opo_protocol import (
    OPO_TOP_K,
    opo_mode,
    oracle_articles,
    protocol_of,
    system_prompt,
)
from services.grading.records import item_of
from shared.events import (
    ChatMessage,
    ChatRequest,
    ExamJob,
    GenerationParams,
    RetrievedRule,
    Role,
    Strategy,
)

JOB_KEY, ITEM_KEY = "exam_job", "exam_item"
"""Metadata the request carries and its response echoes: which job and item it answers."""


def request_id_for(tenant: str, job_id: str, item: str) -> str:
    """Deterministic, so a resent question has the same id (replies de-duplicate); grading
    accepts a reply to an item only under this id."""
    digest = hashlib.blake2b(f"{tenant}/{job_id}/{item}".encode(), digest_size=12)
    return "exam-" + digest.hexdigest()


def exam_request(
    job: ExamJob, question: ExamQuestion, strategy: Strategy, reply_topic: str
) -> ChatRequest:
    protocol = protocol_of(job)
    mode = opo_mode(job.dataset)
    scope = job.scope
    if strategy is Strategy.OPO and protocol == "opo":
        # OPO filters by location for law only; morality rules apply everywhere.
        law = mode == "law"
        where = (question.location,) if law and question.location else ()
        scope = scope.model_copy(update={"jurisdictions": where, "any_jurisdiction": not law,
                                         "top_k": max(scope.top_k, OPO_TOP_K)})  # fmt: skip
    elif strategy is Strategy.OPO and question.location:
        scope = scope.model_copy(
            update={
                "jurisdictions": tuple(dict.fromkeys((*scope.jurisdictions, question.location)))
            }
        )
    oracle: tuple[RetrievedRule, ...] = ()
    if strategy is Strategy.ORACLE and question.principle:
        if protocol == "opo":
            oracle = oracle_articles(question.principle, question.question_id)
        else:
            oracle = (RetrievedRule(rule_id=f"principle.{question.question_id}", version=1,
                                    score=1.0, text=question.principle),)  # fmt: skip
    item = item_of(strategy, question.question_id)
    messages: tuple[ChatMessage, ...] = (
        ChatMessage(role=Role.USER, content=question.prompt_text()),
    )
    if question.prefill is not None:
        # C2-EVAL's sampling: the continuation of a harmful prefill, temperature 0.8, top-p 0.7.
        params = GenerationParams(max_tokens=job.max_tokens, temperature=0.8, top_p=0.7,
                                  seed=job.seed)  # fmt: skip
    else:
        by_letter = job.scoring == "logprobs"
        params = GenerationParams(
            max_tokens=1 if by_letter else job.max_tokens,
            temperature=0.0,
            seed=job.seed,
            option_letters=question.letters,
            constrain_to_options=by_letter and protocol == "opo",
        )
        if protocol == "opo":
            system = system_prompt(mode, len(question.letters))
            messages = (ChatMessage(role=Role.SYSTEM, content=system), *messages)
    return ChatRequest(
        request_id=request_id_for(job.tenant, job.job_id, item),
        tenant=job.tenant,
        messages=messages,
        strategy=strategy,
        scope=scope,
        params=params,
        oracle_rules=oracle,
        prefill=question.prefill,
        reply_topic=reply_topic,
        metadata={JOB_KEY: job.job_id, ITEM_KEY: item},
        protocol=protocol if question.prefill is None else "default",
    )


def check_oracle(job: ExamJob, questions: Sequence[ExamQuestion], dataset: str) -> None:
    """The oracle strategy needs the questions' principles: a file without any (OPO's H-Law,
    H-Basic) is refused, as is, under OPO's protocol, any question without one, rather than
    silently answering them as the baseline would."""
    if Strategy.ORACLE not in job.strategies or job.task != "mcq":
        return
    missing = sum(1 for q in questions if not q.principle)
    if missing == len(questions) or (missing and protocol_of(job) == "opo"):
        raise DatasetError(
            f"{dataset}: the oracle strategy needs each question's principle (the rules it "
            f"tests); {missing} of {len(questions)} questions have none. Drop 'oracle' from "
            "the strategies, or add a 'principle' column."
        )
