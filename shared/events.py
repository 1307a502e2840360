"""Versioned event contracts for every Kafka topic.

Every message on the wire is one of these pydantic models serialized as JSON. Each carries
``kind`` (which model it is) and ``v`` (its schema version); a consumer that gets an unknown kind,
an unknown version or a payload that fails validation sends it to the topic's dead-letter topic.
Adding an optional field is backwards compatible; anything else bumps ``v``.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_serializer,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1
"""The current schema version of every event model below."""

MAX_RULE_TEXT_CHARS = 8000
"""Longest rule text accepted. Rule files with a longer text are rejected with the line (split
it into several rules, one per article or section); nothing splits a rule silently, since a
later update or delete would leave its parts behind."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^\w[\w.:\-]*$"),
]
"""Ids of rules, requests and jobs: letters (any script), digits, ``_ . : -``."""

TenantId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
]
"""Tenant names never contain ':' so ``tenant:rule_id`` keys split unambiguously."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
"""Free-form filter values (jurisdictions, locales, tags); may be any script, e.g. 北京市."""

GLOBAL_JURISDICTION = "global"
"""Jurisdiction of rules that apply everywhere (OPO's 全国 / national law)."""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every model on the wire: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Contract):
    """Envelope fields common to all events."""

    v: Literal[1] = SCHEMA_VERSION
    """Schema version; consumers reject versions they do not know."""
    event_id: str = Field(default_factory=new_id)
    """Unique id of this event (not of the entity it is about)."""
    created_at: datetime = Field(default_factory=utcnow)
    """When the producer created the event (UTC)."""


# --------------------------------------------------------------------------- rules


class RuleDomain(StrEnum):
    LAW = "law"
    MORALITY = "morality"
    POLICY = "policy"
    CONSTITUTION = "constitution"
    OTHER = "other"


class RuleStatus(StrEnum):
    ACTIVE = "active"
    """Retrieved and used for grounding."""
    PENDING = "pending"
    """Stored but not served until an admin activates it (e.g. discovered principles)."""


class Rule(Contract):
    """One rule (a law article, a moral norm, a policy clause, a principle)."""

    tenant: TenantId
    """Owner; a tenant never sees another tenant's rules."""
    rule_id: Identifier
    """Stable id within the tenant."""
    version: int = Field(ge=1)
    """Monotonic per (tenant, rule_id); an older version never overwrites a newer one."""
    domain: RuleDomain = RuleDomain.POLICY
    jurisdiction: Label = GLOBAL_JURISDICTION
    """Where the rule applies: ``global`` or a region name (province, state, company, ...)."""
    locale: Label | None = None
    """BCP 47 language tag of the text, e.g. ``zh-CN``; None when unknown."""
    title: Annotated[str, StringConstraints(max_length=512)] = ""
    """Short name, e.g. the law's name and article number."""
    source: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Where the rule comes from (URL, document, discovery job)."""
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_RULE_TEXT_CHARS)]
    priority: int = Field(default=0, ge=0, le=1000)
    """Hierarchy level; higher wins ties in retrieval ordering (constitution > law > policy)."""
    effective_from: date | None = None
    """First day the rule is in force; None means always was."""
    effective_until: date | None = None
    """Last day the rule is in force; None means no end."""
    status: RuleStatus = RuleStatus.ACTIVE
    tags: tuple[Label, ...] = ()

    @model_validator(mode="after")
    def _dates_ordered(self) -> Rule:
        if (
            self.effective_from is not None
            and self.effective_until is not None
            and self.effective_until < self.effective_from
        ):
            raise ValueError("effective_until is before effective_from")
        return self

    @property
    def key(self) -> str:
        return rule_key(self.tenant, self.rule_id)


def rule_key(tenant: str, rule_id: str) -> str:
    """Kafka key of the rule topic: per-rule ordering and compaction."""
    return f"{tenant}:{rule_id}"


class RuleUpsert(Event):
    """Create a rule or replace it with a newer version."""

    kind: Literal["rule.upsert"] = "rule.upsert"
    rule: Rule

    @property
    def key(self) -> str:
        return self.rule.key


class RuleDelete(Event):
    """Remove a rule from search. The delete is versioned like an upsert: it wins only over
    older versions, so a late, older upsert cannot resurrect the rule."""

    kind: Literal["rule.delete"] = "rule.delete"
    tenant: TenantId
    rule_id: Identifier
    version: int = Field(ge=1)

    @property
    def key(self) -> str:
        return rule_key(self.tenant, self.rule_id)


RuleEvent = Annotated[RuleUpsert | RuleDelete, Field(discriminator="kind")]

MAX_JURISDICTION_DEPTH = 8
MAX_JURISDICTION_NODES = 20_000

JurisdictionPath = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=255,
        strip_whitespace=True,
        pattern=r"^[^/|\s][^/|]*(/[^/|\s][^/|]*)*$",
    ),
]
"""A node of a jurisdiction tree, from the root: ``CN/山东/济南``, ``US/CA``, ``acme/eu-sales``.
A rule filed under a node applies there and in every node below it."""


def ancestors_or_self(path: str) -> tuple[str, ...]:
    """``CN/山东/济南`` -> (``CN``, ``CN/山东``, ``CN/山东/济南``)."""
    parts = [p.strip() for p in path.split("/")]
    return tuple("/".join(parts[: i + 1]) for i in range(len(parts)))


class JurisdictionNode(Contract):
    path: JurisdictionPath
    aliases: tuple[Label, ...] = Field(default=(), max_length=16)
    """Other names of the node in questions and exam files (济南市, Shandong, ...). The last
    segment of the path is always a name of the node."""


class JurisdictionTree(Event):
    """A tenant's jurisdiction tree: the nodes its rules are filed under, their names, and the
    scope of a question that names none. Travels on the rules topic (compacted: the newest tree
    of each tenant stays); replaces the tenant's previous tree when its version is higher."""

    kind: Literal["jurisdictions.tree"] = "jurisdictions.tree"
    tenant: TenantId
    version: int = Field(ge=1)
    nodes: tuple[JurisdictionNode, ...] = Field(max_length=MAX_JURISDICTION_NODES)
    default_scope: tuple[JurisdictionPath, ...] = Field(default=(), max_length=32)
    """What a question that names no jurisdiction is searched under (besides ``global``)."""

    @model_validator(mode="after")
    def _well_formed(self) -> JurisdictionTree:
        paths = [node.path for node in self.nodes]
        folded = [p.casefold() for p in paths]
        if len(set(folded)) != len(folded):
            raise ValueError("a jurisdiction path is declared twice")
        declared = set(folded)
        for path in paths:
            parts = path.split("/")
            if len(parts) > MAX_JURISDICTION_DEPTH:
                raise ValueError(f"{path!r} is deeper than {MAX_JURISDICTION_DEPTH} levels")
            if any(p.strip().casefold() == GLOBAL_JURISDICTION for p in parts):
                raise ValueError(f"{path!r}: '{GLOBAL_JURISDICTION}' is not a node of a tree")
            parent = "/".join(parts[:-1])
            if parent and parent.casefold() not in declared:
                raise ValueError(f"{path!r}: its parent {parent!r} is not declared")
        for path in self.default_scope:
            if path.casefold() not in declared:
                raise ValueError(f"default scope {path!r} is not a declared node")
        return self

    @property
    def key(self) -> str:
        return jurisdictions_key(self.tenant)


def jurisdictions_key(tenant: str) -> str:
    """Kafka key of a tenant's tree on the rules topic; ``@`` never starts a rule id."""
    return f"{tenant}:@jurisdictions"


TREE_RULE_ID = "jurisdictions"
"""``rule_id`` of the confirmation of a jurisdiction tree."""

RulesTopicEvent = Annotated[RuleUpsert | RuleDelete | JurisdictionTree, Field(discriminator="kind")]
"""Everything the rules topic carries."""


class IndexOutcome(StrEnum):
    APPLIED = "applied"
    """The event changed the memory."""
    STALE = "stale"
    """A newer or equal version was already applied; nothing changed (replay, out of order)."""


class RuleIndexed(Event):
    """Confirmation that a rule event is applied and servable (read-your-writes)."""

    kind: Literal["rule.indexed"] = "rule.indexed"
    tenant: TenantId
    rule_id: Identifier
    version: int
    op: Literal["upsert", "delete", "tree"]
    """``tree``: the tenant's jurisdiction tree (``rule_id`` is ``TREE_RULE_ID``)."""
    outcome: IndexOutcome
    source_event_id: str
    """``event_id`` of the rule event this confirms."""
    event_created_at: datetime
    indexed_at: datetime = Field(default_factory=utcnow)

    @property
    def latency_ms(self) -> float:
        """Time from the rule event's creation to servable."""
        return (self.indexed_at - self.event_created_at).total_seconds() * 1000.0


# --------------------------------------------------------------------------- chat


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class ChatMessage(Contract):
    role: Role
    content: Annotated[str, StringConstraints(max_length=100_000)]


class Strategy(StrEnum):
    """How the generation step uses rules (OPO's evaluation modes, DRPO)."""

    BASE = "base"
    """Baseline: no rules (OPO's "base")."""
    OPO = "opo"
    """Retrieve rules and put them before the question."""
    ORACLE = "oracle"
    """Use the rules given in the request (evaluation upper bound)."""
    DRPO = "drpo"
    """Optimized alignment system prompt + in-context examples."""
    RAW = "raw"
    """The messages exactly as given: no rules, no template (e.g. question generation)."""

    @property
    def needs_retrieval(self) -> bool:
        return self is Strategy.OPO

    @classmethod
    def _missing_(cls, value: object) -> Strategy | None:
        # "none" was the baseline's name before 2026-12; events and records may still carry it.
        return cls.BASE if value == "none" else None


PromptProtocol = Literal["default", "opo"]
"""How a request is put to the model: alignstream's prompts, or OPO's paper protocol."""


class RuleScope(Contract):
    """Which rules a request may be grounded in (all within the request's tenant)."""

    domains: tuple[RuleDomain, ...] = ()
    """Empty: every domain."""
    jurisdictions: tuple[Label, ...] = ()
    """Jurisdictions the question concerns (node paths or names of the tenant's tree); each
    node's ancestors and ``global`` apply too, siblings never. Empty: the nodes the question
    names, else the tenant's default scope, else ``global`` only."""
    any_jurisdiction: bool = False
    """Search every jurisdiction (no jurisdiction filter), e.g. an admin's search."""
    locales: tuple[Label, ...] = ()
    """Empty: every locale."""
    as_of: date | None = None
    """Only rules in force on this day; None: the day the request is handled."""
    top_k: int = Field(default=5, ge=1, le=100)
    token_budget: int = Field(default=1000, ge=1, le=32_000)
    """Retrieved texts are trimmed to this many tokens (OPO: 1000)."""
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Drop hits with a cosine similarity below this."""


class GenerationParams(Contract):
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    option_letters: tuple[str, ...] = ()
    """Multiple choice: score these letters from logprobs (e.g. ``("A","B","C","D")``)."""
    constrain_to_options: bool = False
    """The first token may only be one of ``option_letters`` (OPO's scoring of open models:
    the argmax over the option letters' logits, so never invalid)."""


class RuleRef(Contract):
    """A rule cited by an answer: id and the exact version used."""

    rule_id: Identifier
    version: int


class RetrievedRule(Contract):
    """A rule chosen for grounding, with why it was chosen."""

    rule_id: Identifier
    version: int
    score: float
    """Cosine similarity to the query (1.0 for oracle rules)."""
    title: str = ""
    text: str
    domain: RuleDomain = RuleDomain.POLICY
    jurisdiction: str = GLOBAL_JURISDICTION
    priority: int = 0
    tokens: int = 0
    """Tokens this rule's text counts against the budget."""
    vector_rank: int | None = None
    """1-based rank in the vector search (None: not among its candidates, or not searched)."""
    lexical_rank: int | None = None
    """1-based rank in the full-text search (None: not among its candidates)."""

    @property
    def ref(self) -> RuleRef:
        return RuleRef(rule_id=self.rule_id, version=self.version)


class SearchedScope(Contract):
    """The jurisdiction scope a request was searched under, as resolved by retrieval."""

    source: Literal["request", "question", "default", "global", "any"]
    """Where the scope came from: the request's names, names found in the question, the
    tenant's default scope, nothing (``global`` only), or no filter (``any``)."""
    nodes: tuple[str, ...] = ()
    """The nodes resolved (paths)."""
    searched: tuple[str, ...] = ()
    """Every jurisdiction the search matched: the nodes, their ancestors and ``global``
    (empty with ``any``)."""
    unresolved: tuple[str, ...] = ()
    """Names in the request that matched no node (or several): reported, never widened."""


class ChatRequest(Event):
    """A question to answer grounded in the tenant's rules."""

    kind: Literal["chat.request"] = "chat.request"
    request_id: Identifier = Field(default_factory=new_id)
    """Correlation id; the response carries it. Clients de-duplicate on it."""
    tenant: TenantId
    conversation_id: Identifier | None = None
    messages: tuple[ChatMessage, ...] = Field(min_length=1, max_length=256)
    strategy: Strategy = Strategy.OPO
    scope: RuleScope = RuleScope()
    params: GenerationParams = GenerationParams()
    oracle_rules: tuple[RetrievedRule, ...] = ()
    """Rules to use as-is with the oracle strategy."""
    prefill: str | None = None
    """Start of the assistant's answer to continue from (course-correction eval)."""
    reply_topic: str | None = None
    """Where to publish the response; None: the default responses topic."""
    stream: bool = False
    """Also publish the answer's text as it is generated (``chat.tokens``)."""
    prompt_set: Identifier | None = None
    """DRPO prompt set (in Redis) to use; None: retrieval's default set."""
    examples_k: int | None = Field(default=None, ge=0, le=32)
    """DRPO in-context examples to pick by similarity; None: retrieval's default."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Opaque to the pipeline; echoed on the response (e.g. exam job and question ids)."""
    protocol: PromptProtocol = "default"
    """``opo``: OPO's exam prompt exactly (rules unfenced and concatenated as OPO does, the
    budget counted with the deployed model's tokenizer), for reproducing the paper."""

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.conversation_id or self.request_id}"

    @property
    def query(self) -> str:
        """The text retrieval searches with: the last user message."""
        for message in reversed(self.messages):
            if message.role is Role.USER:
                return message.content
        return self.messages[-1].content


class IclExample(Contract):
    """An in-context example of a DRPO prompt set."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    answer: Annotated[str, StringConstraints(max_length=50_000)]
    """As in DRPO's files, with the ``<START>``/``<END>`` markers."""
    score: float | None = None
    """Similarity to the question it was chosen for (None: not chosen by similarity)."""


class GroundedRequest(Event):
    """A chat request with the rules retrieval chose for it."""

    kind: Literal["chat.grounded"] = "chat.grounded"
    request: ChatRequest
    rules: tuple[RetrievedRule, ...] = ()
    system_prompt: str | None = None
    """DRPO: the prompt set's optimized system prompt (None: generation's own set)."""
    examples: tuple[IclExample, ...] = ()
    """DRPO: the prompt set's examples most similar to the question."""
    searched_scope: SearchedScope | None = None
    """The jurisdiction scope the rules were searched under (None: no search)."""
    retrieval_ms: float = 0.0
    received_at: datetime
    """When retrieval consumed the request (for end-to-end timings)."""

    @property
    def key(self) -> str:
        return self.request.key


class Usage(Contract):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Timings(Contract):
    retrieval_ms: float = 0.0
    queue_ms: float = 0.0
    """Time waiting for a generation slot."""
    ttft_ms: float | None = None
    generation_ms: float = 0.0
    total_ms: float = 0.0
    """From the request's creation to the response."""


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"
    BACKEND = "backend"
    INVALID_REQUEST = "invalid_request"
    OVERLOADED = "overloaded"


class ErrorInfo(Contract):
    kind: ErrorKind
    message: str


class ChatResponse(Event):
    """The answer to a chat request (or an error, never silence)."""

    kind: Literal["chat.response"] = "chat.response"
    request_id: Identifier
    tenant: TenantId
    ok: bool = True
    text: str = ""
    cited_rules: tuple[RuleRef, ...] = ()
    strategy: Strategy = Strategy.OPO
    backend: str = ""
    model: str = ""
    finish_reason: str | None = None
    option_logprobs: dict[str, float] | None = None
    """Multiple choice: logprob of each option letter as the first answer token."""
    usage: Usage = Usage()
    timings: Timings = Timings()
    error: ErrorInfo | None = None
    searched_scope: SearchedScope | None = None
    """The jurisdiction scope the answer's rules were searched under (None: no search)."""
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _error_iff_not_ok(self) -> ChatResponse:
        if self.ok == (self.error is not None):
            raise ValueError("a response has an error exactly when ok is false")
        return self

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.request_id}"


class ChatToken(Event):
    """A piece of an answer as it is generated (requests with ``stream``); the pieces of one
    request, in ``seq`` order, concatenate to the response's text."""

    kind: Literal["chat.token"] = "chat.token"
    request_id: Identifier
    tenant: TenantId
    seq: int = Field(ge=0)
    text: str = ""
    final: bool = False
    """The last piece (the response follows on the reply topic)."""

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.request_id}"


# --------------------------------------------------------------------------- exams


class ExamJob(Event):
    """Run an exam through the pipeline with one or more strategies."""

    kind: Literal["exam.job"] = "exam.job"
    job_id: Identifier = Field(default_factory=new_id)
    tenant: TenantId
    dataset: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """Path of the exam file, as the grading service sees it."""
    dataset_format: Literal["auto", "csv", "jsonl"] = "auto"
    """``csv``: OPO's exam CSVs or any ``id,question,A,B,...,answer`` file; ``jsonl``: one
    ``{id, question, options, answer}`` object per line; ``auto``: by file extension."""
    strategies: tuple[Strategy, ...] = Field(default=(Strategy.BASE, Strategy.OPO), min_length=1)
    backend: str | None = None
    """Label of the generation backend the answers come from (recorded with the results)."""
    model: str | None = None
    limit: int | None = Field(default=None, ge=1)
    """Sample this many questions (seeded); None: all."""
    seed: int = 0
    scope: RuleScope = RuleScope()
    """Retrieval scope of the OPO strategy; a question's location is added as jurisdiction."""
    scoring: Literal["auto", "text", "logprobs"] = "auto"
    """How the chosen option is read: from the reply text (OPO's answer patterns), from the
    option letters' logprobs (OPO's open models), or logprobs when the backend gives them."""
    max_tokens: int = Field(default=64, ge=1, le=4096)
    window: int | None = Field(default=None, ge=1, le=10_000)
    """Most questions of this job in the pipeline at once; None: the service default."""
    task: Literal["mcq", "course-correction"] = "mcq"
    """``mcq``: multiple-choice exams graded by the chosen option. ``course-correction``:
    C2-EVAL: a harmful prompt, an assistant turn prefilled with a compliance opener and the first
    k words of an unsafe answer; a judge decides whether the continuation steers away."""
    prefill_words: tuple[int, ...] = Field(default=(10, 20, 30, 40, 50, 60, 70, 80), min_length=1)
    """course-correction: the k values (words of the unsafe answer in the prefill)."""
    protocol: PromptProtocol | None = None
    """``opo``: OPO's prompts per dataset, oracle articles, budget, location filter (law only)
    and letter scoring; ``default``: alignstream's. None: ``opo`` for OPO's five exam files
    (by file name), else ``default``."""

    @property
    def key(self) -> str:
        return self.job_id


class AnswerOutcome(StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"
    INVALID = "invalid"
    """The reply named no option that could be read."""
    ERROR = "error"
    """The pipeline gave an error response on every attempt."""


class ExamAnswer(Contract):
    """One graded answer of an exam job (stored per job, question and strategy)."""

    question_id: Identifier
    strategy: Strategy
    expected: str
    chosen: str | None
    """The extracted option; None when the reply could not be parsed."""
    outcome: AnswerOutcome
    scored_by: Literal["text", "logprobs", "judge", "none"] = "text"
    category: str | None = None
    raw_text: Annotated[str, StringConstraints(max_length=4000)] = ""
    cited_rules: tuple[RuleRef, ...] = ()
    latency_ms: float = 0.0
    attempts: int = 1

    @property
    def correct(self) -> bool:
        return self.outcome is AnswerOutcome.CORRECT


class CategoryScore(Contract):
    category: str
    answered: int
    correct: int
    accuracy: float
    ci_low: float = 0.0
    ci_high: float = 0.0


class StrategyScore(Contract):
    strategy: Strategy
    answered: int = 0
    """Questions finished with this strategy (correct, wrong, invalid or error)."""
    correct: int = 0
    invalid: int = 0
    errors: int = 0
    accuracy: float = 0.0
    """correct / answered: invalid replies and errors count as wrong, as in OPO."""
    ci_low: float = 0.0
    """95% Wilson interval of the accuracy."""
    ci_high: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    categories: tuple[CategoryScore, ...] = ()


class PairedComparison(Contract):
    """One strategy against another on the questions both answered (exact McNemar test)."""

    baseline: Strategy
    treatment: Strategy
    pairs: int
    delta: float
    """Accuracy of the treatment minus the baseline's, on the paired questions."""
    treatment_only: int
    """Questions only the treatment got right."""
    baseline_only: int
    p_value: float


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Stopped by ``exam cancel``: no more questions are sent; the answers so far are kept."""


class ExamResult(Event):
    """Progress (``final=False``) and final results of an exam job."""

    kind: Literal["exam.result"] = "exam.result"
    job_id: Identifier
    tenant: TenantId
    task: Literal["mcq", "course-correction"] = "mcq"
    dataset: str = ""
    backend: str | None = None
    model: str | None = None
    status: JobStatus = JobStatus.RUNNING
    error: str | None = None
    """Why a job failed (e.g. its dataset could not be read)."""
    total_questions: int
    total_answers: int = 0
    """Questions x strategies."""
    answered: int = 0
    final: bool = False
    scores: tuple[StrategyScore, ...] = ()
    comparisons: tuple[PairedComparison, ...] = ()
    started_at: datetime | None = None
    elapsed_s: float = 0.0
    answers_per_s: float = 0.0

    @property
    def key(self) -> str:
        return self.job_id


# --------------------------------------------------------------------------- dead letters


class DeadLetter(Event):
    """A message a service could not process, kept with the reason so nothing is lost."""

    kind: Literal["dead_letter"] = "dead_letter"
    service: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    """The record's key (its first ``MAX_DEAD_LETTER_KEY_BYTES`` bytes)."""
    original: bytes
    """The message body as received, cut to the service's dead-letter prefix: a letter must
    always fit where its message did not (``original_size`` and ``original_sha256`` identify
    the whole body)."""
    original_size: int | None = None
    """Length of the whole body in bytes (None: letters written before bounding)."""
    original_sha256: str | None = None
    """SHA-256 (hex) of the whole body."""
    headers: dict[str, str] = Field(default_factory=dict)
    reason: str
    """Short machine-readable cause, e.g. ``invalid_payload``, ``unknown_version``."""
    error: Annotated[str, StringConstraints(max_length=8192)]
    failed_at: datetime = Field(default_factory=utcnow)

    @property
    def truncated(self) -> bool:
        """Whether ``original`` is only a prefix of the message body."""
        return self.original_size is not None and self.original_size > len(self.original)

    @field_serializer("original", "key", when_used="json")
    def _b64(self, value: bytes | None) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")

    @field_validator("original", "key", mode="before")
    @classmethod
    def _unb64(cls, value: object) -> object:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else value


# --------------------------------------------------------------------------- adapters

AnyEvent = Annotated[
    RuleUpsert
    | RuleDelete
    | JurisdictionTree
    | RuleIndexed
    | ChatRequest
    | GroundedRequest
    | ChatResponse
    | ChatToken
    | ExamJob
    | ExamResult
    | DeadLetter,
    Field(discriminator="kind"),
]

RULE_EVENT: TypeAdapter[RuleUpsert | RuleDelete] = TypeAdapter(RuleEvent)
RULES_TOPIC_EVENT: TypeAdapter[RuleUpsert | RuleDelete | JurisdictionTree] = TypeAdapter(
    RulesTopicEvent
)
ANY_EVENT: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def encode(event: Event) -> bytes:
    """Wire format of every event: compact UTF-8 JSON."""
    return event.model_dump_json().encode("utf-8")
