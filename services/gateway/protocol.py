"""The HTTP API's wire models: OpenAI's chat completions and models (as the official ``openai``
client sends and reads them), alignstream's extension object, and the rules API.

Requests are strict: an unknown field is a 400 (as OpenAI answers), so a misspelt option is
never silently ignored, and a body can never name its tenant (the API key does).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.events import (
    Citation,
    Identifier,
    Label,
    PromptProtocol,
    RuleDomain,
    RuleRef,
    RuleStatus,
    SearchedScope,
    Strategy,
    Timings,
)
from shared.events.chat import MemoryWatermark
from shared.events.rules import MAX_RULE_TEXT_CHARS, MAX_RULE_VERSION

MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 100_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Requests ---------------------------------------------------------------------------------


class TextPart(Strict):
    type: Literal["text"]
    text: Annotated[str, StringConstraints(max_length=MAX_CONTENT_CHARS)]


class OtherPart(BaseModel):
    """Image, audio, file parts: recognised, answered with ``unsupported_content``."""

    model_config = ConfigDict(extra="allow")
    type: Literal["image_url", "input_audio", "file", "refusal"]


Content = Annotated[str, StringConstraints(max_length=MAX_CONTENT_CHARS)]
Part = Annotated[TextPart | OtherPart, Field(discriminator="type")]


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Content | Annotated[list[Part], Field(max_length=64)] | None = None
    name: Annotated[str, StringConstraints(max_length=64)] | None = None
    # Accepted so an assistant turn echoed back by a client validates; a turn that holds tool
    # calls is answered ``unsupported_parameter``.
    tool_calls: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = None
    refusal: str | None = None


class AlignstreamOptions(Strict):
    """alignstream's own request fields (``extra_body={"alignstream": {...}}``)."""

    strategy: Strategy | None = None
    """Overrides the strategy the model name implies."""
    jurisdictions: list[Label] = Field(default=[], max_length=16)
    """Jurisdictions the question concerns (tree nodes or names); empty: the key's default
    scope, then names found in the question, the tenant's default scope, ``global``."""
    any_jurisdiction: bool = False
    domains: list[RuleDomain] = Field(default=[], max_length=8)
    locales: list[Label] = Field(default=[], max_length=16)
    as_of: date | None = None
    """Only rules in force on this day."""
    top_k: int | None = Field(default=None, ge=1, le=100)
    token_budget: int | None = Field(default=None, ge=1, le=32_000)
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    prompt_set: Identifier | None = None
    examples_k: int | None = Field(default=None, ge=0, le=32)
    protocol: PromptProtocol = "default"
    min_watermark: MemoryWatermark = {}
    """Read-your-writes: the ``watermark`` a rule change returned; the answer is searched in a
    memory that applied at least that much of the rule log (or is an error)."""
    conversation_id: Identifier | None = None
    metadata: dict[Annotated[str, StringConstraints(max_length=64)],
                   Annotated[str, StringConstraints(max_length=256)]] = Field(
        default={}, max_length=16
    )  # fmt: skip
    """Echoed on the response (and in the pipeline's events)."""


class StreamOptions(Strict):
    include_usage: bool = False


class ChatCompletionRequest(Strict):
    model: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32_768)
    stop: Annotated[str, StringConstraints(max_length=200)] | list[
        Annotated[str, StringConstraints(min_length=1, max_length=200)]
    ] | None = Field(default=None)  # fmt: skip
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    n: int | None = Field(default=None, ge=1, le=128)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
    # Recognised OpenAI parameters the pipeline does not implement: accepted at their neutral
    # value, any other value is answered ``unsupported_parameter`` (never silently ignored).
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(default=None, max_length=300)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    function_call: str | dict[str, Any] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = Field(default=None, max_length=4)
    alignstream: AlignstreamOptions = AlignstreamOptions()


# Responses --------------------------------------------------------------------------------


class AlignstreamTimings(Timings):
    gateway_ms: float = 0.0
    """From the HTTP request's arrival to the answer (as this gateway saw it)."""
    delivery_ms: float = 0.0
    """From the response's creation (where it was generated) to this gateway's answer: the
    publish, the reply topic and this gateway's reading of it (clocks of two hosts)."""


class AlignstreamResult(BaseModel):
    """alignstream's own response fields: the rule versions the answer was given, and those it
    is attributed to."""

    request_id: str
    strategy: Strategy
    grounded_in: list[RuleRef] = []
    """Every rule (id@version) in the prompt, whatever the answer says."""
    cited: list[Citation] = []
    """The rules the answer is attributed to, with the method and score (``shared/attribution``)."""
    searched_scope: SearchedScope | None = None
    memory_watermark: MemoryWatermark = {}
    """The state of the rule memory the rules were searched in (``rules.events`` partition ->
    next offset applied)."""
    backend: str = ""
    timings: AlignstreamTimings = AlignstreamTimings()


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: Literal["stop", "length", "content_filter"] = "stop"
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
    alignstream: AlignstreamResult


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length", "content_filter"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    alignstream: AlignstreamResult | None = None
    """On the last chunk that has a choice (with its ``finish_reason``)."""


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "alignstream"
    description: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# Rules API ----------------------------------------------------------------------------------


class RuleBody(Strict):
    """A rule as ``PUT /v1/rules/{rule_id}`` takes it (tenant from the key, id from the path)."""

    version: int | None = Field(default=None, ge=1, le=MAX_RULE_VERSION)
    """None: one above the version the memory holds (a concurrent writer may take the same)."""
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_RULE_TEXT_CHARS)]
    title: Annotated[str, StringConstraints(max_length=512)] = ""
    domain: RuleDomain = RuleDomain.POLICY
    jurisdiction: Label = "global"
    locale: Label | None = None
    source: Annotated[str, StringConstraints(max_length=1024)] | None = None
    priority: int = Field(default=0, ge=0, le=1000)
    effective_from: date | None = None
    effective_until: date | None = None
    status: RuleStatus = RuleStatus.ACTIVE
    tags: list[Label] = Field(default=[], max_length=32)


class RuleView(BaseModel):
    """A rule as the memory holds it now."""

    rule_id: str
    version: int
    title: str = ""
    text: str
    domain: str
    jurisdiction: str
    locale: str | None = None
    status: str
    tags: list[str] = []
    priority: int = 0
    effective_from: date | None = None
    effective_until: date | None = None
    source: str | None = None


class RuleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RuleView]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; None: this was the last."""


class RuleChange(BaseModel):
    """What ``PUT``/``DELETE`` did: the event published and, with ``wait``, ingest's outcome."""

    rule_id: str
    version: int
    op: Literal["upsert", "delete"]
    event_id: str | None
    """None when nothing was published (``unchanged``)."""
    outcome: Literal["published", "applied", "stale", "unchanged"]
    """``published``: on the rules log (not yet confirmed servable); ``applied``/``stale``:
    ingest's confirmation (``stale``: a newer or equal version was already there);
    ``unchanged``: the rule was in that state already (activate, deactivate)."""
    latency_ms: float | None = None
    """Event creation to servable (with ``wait``)."""
    watermark: MemoryWatermark = {}
    """Where the change landed in the rule log: pass as ``alignstream.min_watermark`` to have
    an answer searched in a memory that holds it."""


class ApplicableRequest(Strict):
    """``POST /v1/rules/applicable``: the rules that apply to a text."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS)]
    jurisdictions: list[Label] = Field(default=[], max_length=16)
    any_jurisdiction: bool = False
    domains: list[RuleDomain] = Field(default=[], max_length=8)
    locales: list[Label] = Field(default=[], max_length=16)
    as_of: date | None = None
    top_k: int = Field(default=5, ge=1, le=100)
    token_budget: int = Field(default=1000, ge=1, le=32_000)
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Rules less similar to the text (cosine) are left out; omitted: the gateway's
    ``check_min_score`` (0.15 by default, which leaves out unrelated rules); -1: none."""


class ApplicableRule(BaseModel):
    rule_id: str
    version: int
    score: float
    title: str = ""
    text: str
    domain: str
    jurisdiction: str
    priority: int = 0
    vector_rank: int | None = None
    lexical_rank: int | None = None


class ApplicableRules(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApplicableRule]
    searched_scope: SearchedScope
    as_of: date
    search_ms: float
