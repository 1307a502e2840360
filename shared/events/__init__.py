"""Versioned event contracts for every Kafka topic, one module per family:

- ``base``: the envelope (``kind``, ``v``, ``event_id``, ``created_at``, ``key``) and field types;
- ``rules``: rule upserts, deletes, jurisdiction trees and their confirmations;
- ``changesets``: candidate versions staged under a name, promoted or discarded at once;
- ``rule_log``: everything the rule log carries;
- ``chat``: requests and grounded requests; ``chat_replies``: responses, streamed pieces and
  cancels;
- ``exams``: exam jobs and results;
- ``research``: research jobs (DRPO, C2-SYN, IterAlign) and their progress;
- ``audit``: one entry per answered request, and its tenant's hash chain;
- ``dead_letters``: messages that could not be processed.

Import from here (``from shared import events``); the modules are the layout, not the API.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from shared.events.audit import (
    MAX_AUDIT_BATCH,
    AuditBatch,
    AuditEntry,
    AuditLink,
    AuditRecord,
    entries_of,
)
from shared.events.base import (
    SCHEMA_VERSION,
    Contract,
    Event,
    Identifier,
    Label,
    TenantId,
    encode,
    key_bytes,
    new_id,
    utcnow,
)
from shared.events.changesets import (
    MAX_CHANGE_SET_RULES,
    ChangeSetDiscard,
    ChangeSetEvent,
    ChangeSetName,
    ChangeSetPromote,
    ChangeSetStage,
    changeset_key,
)
from shared.events.chat import (
    MAX_QUERY_CHARS,
    OPO_REPETITION_PENALTY,
    ChatMessage,
    ChatRequest,
    Citation,
    GenerationParams,
    GroundedRequest,
    IclExample,
    PromptProtocol,
    RetrievedRule,
    Role,
    RuleRef,
    RuleScope,
    SearchedScope,
    Strategy,
    is_opo,
    search_text,
)
from shared.events.chat_replies import (
    CancelReason,
    ChatCancel,
    ChatResponse,
    ChatToken,
    ErrorInfo,
    ErrorKind,
    Timings,
    Usage,
)
from shared.events.dead_letters import (
    DeadLetter,
)
from shared.events.exams import (
    AnswerOutcome,
    AspectScore,
    CategoryScore,
    ExamJob,
    ExamResult,
    ExamTask,
    JobStatus,
    PairedComparison,
    ScoredBy,
    Scoring,
    StrategyScore,
)
from shared.events.research import (
    ConstitutionDiscoverSpec,
    CourseCorrectionSynthSpec,
    PromptOptimizeSpec,
    QuestionGenerateSpec,
    ResearchJob,
    ResearchProgress,
    ResearchSpec,
)
from shared.events.rule_log import RULES_TOPIC_EVENT, RulesTopicEvent
from shared.events.rules import (
    GLOBAL_JURISDICTION,
    MAX_JURISDICTION_DEPTH,
    MAX_JURISDICTION_NODES,
    MAX_RULE_TEXT_CHARS,
    MAX_RULE_VERSION,
    RULE_EVENT,
    TREE_RULE_ID,
    IndexOutcome,
    JurisdictionNode,
    JurisdictionPath,
    JurisdictionTree,
    MemoryEvent,
    Publisher,
    Rule,
    RuleDelete,
    RuleDomain,
    RuleEvent,
    RuleIndexed,
    RuleOp,
    RuleStatus,
    RuleTarget,
    RuleUpsert,
    ancestors_or_self,
    jurisdictions_key,
    rule_key,
)

AnyEvent = Annotated[
    RulesTopicEvent
    | RuleIndexed
    | ChatRequest
    | GroundedRequest
    | ChatResponse
    | ChatToken
    | ChatCancel
    | ExamJob
    | ExamResult
    | ResearchJob
    | ResearchProgress
    | AuditEntry
    | AuditBatch
    | AuditLink
    | DeadLetter,
    Field(discriminator="kind"),
]
"""Every event of every topic."""

ANY_EVENT: TypeAdapter[Event] = TypeAdapter(AnyEvent)

__all__ = [
    "ANY_EVENT",
    "GLOBAL_JURISDICTION",
    "MAX_AUDIT_BATCH",
    "MAX_CHANGE_SET_RULES",
    "MAX_JURISDICTION_DEPTH",
    "MAX_JURISDICTION_NODES",
    "MAX_QUERY_CHARS",
    "MAX_RULE_TEXT_CHARS",
    "MAX_RULE_VERSION",
    "OPO_REPETITION_PENALTY",
    "RULES_TOPIC_EVENT",
    "RULE_EVENT",
    "SCHEMA_VERSION",
    "TREE_RULE_ID",
    "AnswerOutcome",
    "AnyEvent",
    "AspectScore",
    "AuditBatch",
    "AuditEntry",
    "AuditLink",
    "AuditRecord",
    "CancelReason",
    "CategoryScore",
    "ChangeSetDiscard",
    "ChangeSetEvent",
    "ChangeSetName",
    "ChangeSetPromote",
    "ChangeSetStage",
    "ChatCancel",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ChatToken",
    "Citation",
    "ConstitutionDiscoverSpec",
    "Contract",
    "CourseCorrectionSynthSpec",
    "DeadLetter",
    "ErrorInfo",
    "ErrorKind",
    "Event",
    "ExamJob",
    "ExamResult",
    "ExamTask",
    "GenerationParams",
    "GroundedRequest",
    "IclExample",
    "Identifier",
    "IndexOutcome",
    "JobStatus",
    "JurisdictionNode",
    "JurisdictionPath",
    "JurisdictionTree",
    "Label",
    "MemoryEvent",
    "PairedComparison",
    "PromptOptimizeSpec",
    "PromptProtocol",
    "Publisher",
    "QuestionGenerateSpec",
    "ResearchJob",
    "ResearchProgress",
    "ResearchSpec",
    "RetrievedRule",
    "Role",
    "Rule",
    "RuleDelete",
    "RuleDomain",
    "RuleEvent",
    "RuleIndexed",
    "RuleOp",
    "RuleRef",
    "RuleScope",
    "RuleStatus",
    "RuleTarget",
    "RuleUpsert",
    "RulesTopicEvent",
    "ScoredBy",
    "Scoring",
    "SearchedScope",
    "Strategy",
    "StrategyScore",
    "TenantId",
    "Timings",
    "Usage",
    "ancestors_or_self",
    "changeset_key",
    "encode",
    "entries_of",
    "is_opo",
    "jurisdictions_key",
    "key_bytes",
    "new_id",
    "rule_key",
    "search_text",
    "utcnow",
]
