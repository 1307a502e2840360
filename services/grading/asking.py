"""An exam question as a chat request through the pipeline, per strategy."""

from __future__ import annotations

import hashlib

from services.grading.datasets import ExamQuestion
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
    scope = job.scope
    if strategy is Strategy.OPO and question.location:
        scope = scope.model_copy(
            update={
                "jurisdictions": tuple(dict.fromkeys((*scope.jurisdictions, question.location)))
            }
        )
    oracle: tuple[RetrievedRule, ...] = ()
    if strategy is Strategy.ORACLE and question.principle:
        oracle = (RetrievedRule(rule_id=f"principle.{question.question_id}", version=1,
                                score=1.0, text=question.principle),)  # fmt: skip
    item = item_of(strategy, question.question_id)
    if question.prefill is not None:
        # C2-EVAL's sampling: the continuation of a harmful prefill, temperature 0.8, top-p 0.7.
        params = GenerationParams(max_tokens=job.max_tokens, temperature=0.8, top_p=0.7,
                                  seed=job.seed)  # fmt: skip
    else:
        params = GenerationParams(
            max_tokens=1 if job.scoring == "logprobs" else job.max_tokens,
            temperature=0.0,
            seed=job.seed,
            option_letters=question.letters,
        )
    return ChatRequest(
        request_id=request_id_for(job.tenant, job.job_id, item),
        tenant=job.tenant,
        messages=(ChatMessage(role=Role.USER, content=question.prompt_text()),),
        strategy=strategy,
        scope=scope,
        params=params,
        oracle_rules=oracle,
        prefill=question.prefill,
        reply_topic=reply_topic,
        metadata={JOB_KEY: job.job_id, ITEM_KEY: item},
    )
