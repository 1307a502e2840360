"""An exam question as a chat request through the pipeline, per strategy."""

from __future__ import annotations

import hashlib
import hmac

from services.grading.datasets import ExamQuestion
from services.grading.opo_protocol import OPO_TOP_K, opo_mode, oracle_articles, protocol_of
from services.grading.records import WorkItem, item_of
from services.grading.tasks import TASKS
from shared.events import ChatRequest, ExamJob, RetrievedRule, RuleDomain, Strategy, is_opo
from shared.opo import NATIONAL
from shared.strategies import RulesFrom, spec_of

JOB_KEY, ITEM_KEY = "exam_job", "exam_item"
"""Metadata the request carries and its response echoes: which job and item it answers."""


def request_id_for(nonce: str, tenant: str, job_id: str, item: WorkItem) -> str:
    """Deterministic, so a resent question has the same id (replies de-duplicate); grading
    accepts a reply to an item only under this id. Keyed by the job's secret ``nonce``: the id
    cannot be worked out from the job's public values, so a producer on ``exam.answers`` cannot
    answer another tenant's items. (Jobs stored without a nonce keep their unkeyed ids.)"""
    message = f"{tenant}/{job_id}/{item}".encode()
    if not nonce:
        return "exam-" + hashlib.blake2b(message, digest_size=12).hexdigest()
    return "exam-" + hmac.new(nonce.encode(), message, hashlib.sha256).hexdigest()[:40]


def exam_request(
    job: ExamJob, question: ExamQuestion, strategy: Strategy, reply_topic: str, *, nonce: str
) -> ChatRequest:
    """The chat request of one work item: the strategy's rules (searched under the question's
    location, or the question's own principle as the oracle's), asked the task's way."""
    protocol = protocol_of(job)
    spec = spec_of(strategy)
    scope = job.scope
    if spec.searches and is_opo(protocol):
        # OPO searches its law corpus under the question's location (an empty one is national
        # law, 全国) and its morality corpus everywhere; ``opo`` scopes a morality question to
        # the organization it names (inferred from its text, as a place is).
        law = opo_mode(job.dataset) == "law"
        where = (question.location or NATIONAL,) if law else ()
        everywhere = not law and protocol == "opo-exact"
        domain = RuleDomain.LAW if law else RuleDomain.MORALITY
        scope = scope.model_copy(update={"jurisdictions": where, "any_jurisdiction": everywhere,
                                         "domains": (domain,),
                                         "top_k": max(scope.top_k, OPO_TOP_K)})  # fmt: skip
    elif spec.searches and question.location:
        scope = scope.model_copy(
            update={
                "jurisdictions": tuple(dict.fromkeys((*scope.jurisdictions, question.location)))
            }
        )
    if strategy is Strategy.CANDIDATE:
        scope = scope.model_copy(update={"change_set": job.candidate})
    oracle: tuple[RetrievedRule, ...] = ()
    if spec.rules is RulesFrom.REQUEST and question.principle:
        if is_opo(protocol):
            oracle = oracle_articles(question.principle, question.question_id)
        else:
            oracle = (RetrievedRule(rule_id=f"principle.{question.question_id}", version=1,
                                    score=1.0, text=question.principle),)  # fmt: skip
    item = item_of(strategy, question.question_id)
    asking = TASKS[job.task].ask(job, question, protocol)
    return ChatRequest(
        request_id=request_id_for(nonce, job.tenant, job.job_id, item),
        tenant=job.tenant,
        messages=asking.messages,
        strategy=strategy,
        scope=scope,
        params=asking.params,
        oracle_rules=oracle,
        prefill=asking.prefill,
        reply_topic=reply_topic,
        metadata={JOB_KEY: job.job_id, ITEM_KEY: str(item)},
        protocol=asking.protocol,
    )
