"""Chat replies: a request's answer (``ChatResponse``), the answer's text as it streams
(``ChatToken``), and a client's word that it no longer waits for an answer (``ChatCancel``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from shared.events.base import Contract, Event, Identifier, TenantId
from shared.events.chat import Citation, MemoryWatermark, RuleRef, SearchedScope, Strategy


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
    CANCELLED = "cancelled"
    """The client cancelled the request (``ChatCancel``) before its answer was done."""


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
    grounded_in: tuple[RuleRef, ...] = ()
    """The rules (id@version) the answer was given, in prompt order, whatever it says."""
    cited: tuple[Citation, ...] = ()
    """Those of them the answer is attributed to, by ``Citation.method``."""
    strategy: Strategy = Strategy.OPO
    backend: str = ""
    model: str = ""
    finish_reason: str | None = None
    option_logprobs: dict[str, float] | None = None
    """Multiple choice: logprob of each option letter as the first answer token."""
    usage: Usage = Usage()
    timings: Timings = Timings()
    error: ErrorInfo | None = None
    memory_watermark: MemoryWatermark = Field(default_factory=dict)
    """The state of the memory the answer's rules were searched in (see ``GroundedRequest``)."""
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


class CancelReason(StrEnum):
    CLIENT_LEFT = "client_left"
    TIMED_OUT = "timed_out"


class ChatCancel(Event):
    """A client no longer waits for a request's answer (its stream was dropped, or it timed
    out): generation aborts the request if it is queued or generating, and answers it with a
    ``cancelled`` error. The request id is the client's secret (random, never shown to other
    tenants), so a producer on the cancels topic cannot aim at another tenant's requests."""

    kind: Literal["chat.cancel"] = "chat.cancel"
    request_id: Identifier
    tenant: TenantId
    reason: CancelReason = CancelReason.CLIENT_LEFT

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.request_id}"
