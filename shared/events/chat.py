"""Chat requests: a question (``ChatRequest``) and the same question with the rules retrieval
chose (``GroundedRequest``), with what they carry (scope, strategy, rule references). Their
answers are in ``chat_replies``."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.events.base import Contract, Event, Identifier, Label, TenantId, new_id
from shared.events.changesets import ChangeSetName
from shared.events.rules import GLOBAL_JURISDICTION, RuleDomain

MemoryWatermark = Annotated[
    dict[Annotated[int, Field(ge=0, le=100_000)], Annotated[int, Field(ge=0)]],
    Field(max_length=1024),
]
"""How far the memory applied the rule log: partition of ``rules.events`` -> next offset."""

MAX_QUERY_CHARS = 2_000
"""Retrieval searches with the first this many characters of the question (its embedding and
its terms): the search's cost is bounded whatever a message holds (100k characters took the
shared embedder ~6 s, every tenant waiting behind it), and a question's opening says what it
is about. The whole message still reaches the model."""


def search_text(text: str) -> str:
    """What of ``text`` a search reads (retrieval's query, the check endpoint's text)."""
    return text[:MAX_QUERY_CHARS]


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class ChatMessage(Contract):
    role: Role
    content: Annotated[str, StringConstraints(max_length=100_000)]


class Strategy(StrEnum):
    """How the generation step uses rules (OPO's evaluation modes, DRPO); what each does is
    ``shared.strategies.STRATEGIES``."""

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
    CANDIDATE = "candidate"
    """OPO grounded in a staged change set (the request's ``scope.change_set``): the exam arm
    that ``exam run --candidate`` pairs with live OPO."""

    @classmethod
    def _missing_(cls, value: object) -> Strategy | None:
        # "none" was the baseline's name before 2026-12; events and records may still carry it.
        return cls.BASE if value == "none" else None


PromptProtocol = Literal["default", "opo", "opo-exact"]
"""How a request is put to the model: alignstream's prompts, or OPO's paper protocol;
``opo-exact`` also as OPO's code puts it to open models: system and user text joined with a
newline and no chat template, a repetition penalty of 1.1 (the vLLM engine only)."""

OPO_REPETITION_PENALTY = 1.1
"""OPO's generation config for open models."""


def is_opo(protocol: PromptProtocol) -> bool:
    """OPO's prompts, rules, budget and scoring (either way of putting them to the model)."""
    return protocol in ("opo", "opo-exact")


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
    change_set: ChangeSetName | None = None
    """Search the memory as it would be once change set ``change_set`` is promoted: its staged
    versions instead of the live ones they replace (``rules stage``); None: the live memory."""


class GenerationParams(Contract):
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    option_letters: tuple[str, ...] = ()
    """Multiple choice: score these letters from logprobs (e.g. ``("A","B","C","D")``)."""
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=2.0)
    """Over 1.0: tokens already in the prompt or answer are made less likely (vLLM's and
    transformers' meaning; OPO used 1.1)."""
    constrain_to_options: bool = False
    """The first token may only be one of ``option_letters`` (OPO's scoring of open models:
    the argmax over the option letters' logits, so never invalid)."""


class RuleRef(Contract):
    """A rule cited by an answer: id and the exact version used."""

    rule_id: Identifier
    version: int


class Citation(Contract):
    """A rule an answer is attributed to (``shared/attribution.py``): by an inline ``[n]``
    marker the answer wrote, or by ``support`` (the answer restates the rule's terms and states
    no amount of time that contradicts it), with the method's score."""

    rule_id: Identifier
    version: int
    method: Literal["marker", "support"]
    score: float = Field(ge=0.0, le=1.0)


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

    source: Literal["request", "question", "default", "global", "any", "tree"]
    """Where the scope came from: the request's names, names found in the question, the
    tenant's default scope, nothing (``global`` only), no filter asked for (``any``), or no
    place known and the tenant's whole tree searched (``tree``: its ``unplaced`` policy)."""
    nodes: tuple[str, ...] = ()
    """The nodes resolved (paths)."""
    searched: tuple[str, ...] = ()
    """Every jurisdiction the search matched: the nodes, their ancestors and ``global``
    (empty with ``any``)."""
    unresolved: tuple[str, ...] = ()
    """Names in the request that matched no node (or several): reported, never widened."""

    @property
    def every_jurisdiction(self) -> bool:
        """Searched with no jurisdiction filter (``any`` asked for, or ``tree``)."""
        return self.source in ("any", "tree")


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
    min_watermark: MemoryWatermark = Field(default_factory=dict)
    """Read-your-writes: search only a memory that applied the rule log at least this far
    (e.g. ``AlignstreamClient.published_watermark`` after a publish); retrieval waits for it,
    bounded, and the answer is an error if it is not reached."""

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.conversation_id or self.request_id}"

    @property
    def question(self) -> str:
        """The question: the last user message (whole; what the model answers)."""
        for message in reversed(self.messages):
            if message.role is Role.USER:
                return message.content
        return self.messages[-1].content

    @property
    def query(self) -> str:
        """The text retrieval searches with: the question's first ``MAX_QUERY_CHARS``
        characters."""
        return search_text(self.question)


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
    memory_watermark: MemoryWatermark = Field(default_factory=dict)
    """The watermark the memory had applied when the rules were searched."""
    retrieval_ms: float = 0.0
    received_at: datetime
    """When retrieval consumed the request (for end-to-end timings)."""

    @property
    def key(self) -> str:
        return self.request.key
