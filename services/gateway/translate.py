"""OpenAI's chat completions <-> alignstream's events, both ways; pure functions.

A request becomes a ``ChatRequest`` of the key's tenant (never one the body names), within the
key's scope (``key_scope.py``). A response becomes a completion, or the last
chunks of a stream, carrying the rule versions the answer followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from services.gateway.errors import ApiError, invalid, unsupported
from services.gateway.key_scope import searched_scope
from services.gateway.protocol import (
    AlignstreamResult,
    AlignstreamTimings,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    Message,
    ModelCard,
    ResponseMessage,
    TextPart,
)
from shared import events
from shared.tenants import ApiKey

MODEL = "alignstream"
"""The default model id: the gateway's default strategy; ``alignstream:<strategy>`` picks one."""
MODEL_STRATEGIES: dict[str, str] = {
    events.Strategy.BASE: "the deployed model with no rules (baseline)",
    events.Strategy.OPO: "grounded in the tenant's rules that apply (OPO)",
    events.Strategy.DRPO: "DRPO's optimized alignment prompt and in-context examples",
}
EXAM_ONLY = {
    events.Strategy.ORACLE: "The oracle strategy takes its rules from an exam job; it is not "
    "served over HTTP.",
    events.Strategy.CANDIDATE: "The candidate strategy is an exam's arm for a staged change "
    "set (exam run --candidate); it is not served over HTTP.",
}
"""Strategies only exams use, and why a request cannot name them."""
MAX_STOP = 4
_ROLES = {"system": events.Role.SYSTEM, "developer": events.Role.SYSTEM,
          "user": events.Role.USER, "assistant": events.Role.ASSISTANT}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a request that sets nothing gets (from the gateway's settings)."""

    strategy: events.Strategy
    max_tokens: int


def model_cards(default: events.Strategy, created: int) -> list[ModelCard]:
    described = f"{MODEL}:{default.value}: {MODEL_STRATEGIES[default]}"
    cards = [ModelCard(id=MODEL, created=created, description=described)]
    cards += [ModelCard(id=f"{MODEL}:{name}", created=created, description=text)
              for name, text in MODEL_STRATEGIES.items()]  # fmt: skip
    return cards


def strategy_of(model: str, default: events.Strategy) -> events.Strategy:
    if model == MODEL:
        return default
    name = model.removeprefix(f"{MODEL}:")
    if name != model and name in MODEL_STRATEGIES:
        return events.Strategy(name)
    raise ApiError(404, f"The model {model[:128]!r} does not exist; GET /v1/models lists them.",
                   code="model_not_found", param="model")  # fmt: skip


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    if body.n not in (None, 1):
        raise unsupported("n", "Only n=1 is supported.")
    if body.logprobs or body.top_logprobs:
        raise unsupported("logprobs", "Token logprobs are not returned by this API.")
    neutral = {
        "frequency_penalty": body.frequency_penalty in (None, 0),
        "presence_penalty": body.presence_penalty in (None, 0),
        "logit_bias": not body.logit_bias,
        "tools": not body.tools and not body.functions,
        "tool_choice": body.tool_choice in (None, "none") and body.function_call in (None, "none"),
        "response_format": body.response_format in (None, {"type": "text"}),
        "modalities": body.modalities in (None, ["text"]),
    }
    for param, ok in neutral.items():
        if not ok:
            raise unsupported(param, f"{param} is not supported by this API.")


def _message(index: int, message: Message) -> events.ChatMessage:
    param = f"messages[{index}]"
    if message.role not in _ROLES:
        raise unsupported(f"{param}.role", f"Messages with role {message.role!r} (tool use) "
                                           "are not supported.")  # fmt: skip
    if message.tool_calls:
        raise unsupported(f"{param}.tool_calls", "Tool calls are not supported.")
    content = message.content
    if isinstance(content, list):
        if not all(isinstance(part, TextPart) for part in content):
            raise ApiError(400, "Only text content parts are supported.",
                           code="unsupported_content", param=f"{param}.content")  # fmt: skip
        content = "\n".join(part.text for part in content if isinstance(part, TextPart))
    if content is None:
        if message.role != "assistant":
            raise ApiError(400, f"{param}.content is required.", param=f"{param}.content")
        content = ""
    return events.ChatMessage(role=_ROLES[message.role], content=content)


def _stop(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None or stop == "":
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > MAX_STOP:
        raise ApiError(400, f"At most {MAX_STOP} stop sequences.", param="stop")
    return stops


def to_chat_request(
    body: ChatCompletionRequest, key: ApiKey, *, reply_topic: str, defaults: Defaults
) -> events.ChatRequest:
    """The pipeline's request for an HTTP request made with ``key``; ``ApiError`` (400/404)
    for what the pipeline cannot honour."""
    _refuse_unsupported(body)
    options = body.alignstream
    strategy = options.strategy or strategy_of(body.model, defaults.strategy)
    if options.strategy is not None:
        strategy_of(body.model, defaults.strategy)  # the model must exist all the same
    if strategy in EXAM_ONLY:
        raise unsupported("alignstream.strategy", EXAM_ONLY[strategy])
    messages = tuple(_message(i, m) for i, m in enumerate(body.messages))
    jurisdictions, any_jurisdiction = searched_scope(key, options.jurisdictions,
                                                     options.any_jurisdiction)  # fmt: skip
    scope: dict[str, object] = {
        "jurisdictions": jurisdictions,
        "any_jurisdiction": any_jurisdiction,
        "domains": tuple(options.domains),
        "locales": tuple(options.locales),
        "as_of": options.as_of,
    }
    for name in ("top_k", "token_budget", "min_score"):
        if (value := getattr(options, name)) is not None:
            scope[name] = value
    try:
        return events.ChatRequest(
            tenant=key.tenant,
            conversation_id=options.conversation_id,
            messages=messages,
            strategy=strategy,
            scope=events.RuleScope.model_validate(scope),
            params=events.GenerationParams(
                max_tokens=body.max_completion_tokens or body.max_tokens or defaults.max_tokens,
                temperature=1.0 if body.temperature is None else body.temperature,
                top_p=1.0 if body.top_p is None else body.top_p,
                seed=body.seed,
                stop=_stop(body.stop),
            ),
            reply_topic=reply_topic,
            stream=bool(body.stream),
            prompt_set=options.prompt_set,
            examples_k=options.examples_k,
            protocol=options.protocol,
            min_watermark=options.min_watermark,
            metadata={**options.metadata, "api_key": key.key_id},
        )
    except ValidationError as exc:
        raise invalid(exc.errors()) from exc


def _finish_reason(response: events.ChatResponse) -> str:
    return "length" if response.finish_reason == "length" else "stop"


def result_of(response: events.ChatResponse, gateway_ms: float) -> AlignstreamResult:
    delivery_ms = (datetime.now(UTC) - response.created_at).total_seconds() * 1000
    timings = AlignstreamTimings(**response.timings.model_dump(), gateway_ms=gateway_ms,
                                 delivery_ms=max(0.0, delivery_ms))  # fmt: skip
    return AlignstreamResult(request_id=response.request_id, strategy=response.strategy,
                             grounded_in=list(response.grounded_in),
                             cited=list(response.cited),
                             memory_watermark=response.memory_watermark,
                             searched_scope=response.searched_scope, backend=response.backend,
                             timings=timings)  # fmt: skip


def _usage(response: events.ChatResponse) -> CompletionUsage:
    usage = response.usage
    return CompletionUsage(prompt_tokens=usage.prompt_tokens,
                           completion_tokens=usage.completion_tokens,
                           total_tokens=usage.prompt_tokens + usage.completion_tokens)  # fmt: skip


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def to_completion(
    response: events.ChatResponse, *, model: str, created: int, gateway_ms: float
) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id(response.request_id),
        created=created,
        model=model,
        system_fingerprint=response.model or None,
        choices=[
            Choice(
                message=ResponseMessage(content=response.text),
                finish_reason=_finish_reason(response),
            )
        ],
        usage=_usage(response),
        alignstream=result_of(response, gateway_ms),
    )


@dataclass(frozen=True, slots=True)
class Chunks:
    """The chunks of one streamed completion."""

    request_id: str
    model: str
    created: int

    def _chunk(self, choices: list[ChunkChoice], **extra: object) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=completion_id(self.request_id), created=self.created,
                                   model=self.model, choices=choices, **extra)  # fmt: skip

    def opening(self) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])

    def text(self, text: str) -> ChatCompletionChunk:
        return self._chunk([ChunkChoice(delta=Delta(content=text))])

    def closing(
        self, response: events.ChatResponse, *, gateway_ms: float, include_usage: bool
    ) -> list[ChatCompletionChunk]:
        """The last choice chunk (finish reason, cited rules) and, when asked, the usage."""
        last = self._chunk([ChunkChoice(delta=Delta(), finish_reason=_finish_reason(response))],
                           alignstream=result_of(response, gateway_ms))  # fmt: skip
        if not include_usage:
            return [last]
        return [last, self._chunk([], usage=_usage(response))]
