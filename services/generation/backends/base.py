"""The backend interface: one call generates one answer; many calls run concurrently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared.events import GenerationParams


@dataclass(frozen=True, slots=True)
class GenerationInput:
    request_id: str
    messages: tuple[dict[str, str], ...]
    params: GenerationParams
    continue_final: bool = False
    """Continue the last (assistant) message instead of starting a new turn."""
    stop: tuple[str, ...] = ()
    on_text: Callable[[str], None] | None = None
    """Called with each new piece of text as it is generated (streaming requests)."""
    joined: bool = False
    """The prompt is the messages' texts joined by newlines, no chat template (opo-exact)."""


@dataclass(slots=True)
class GenerationOutput:
    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    option_logprobs: dict[str, float] | None = None
    """Logprob of each requested option letter as the first generated token."""
    extra: dict[str, str] = field(default_factory=dict)


class BackendError(Exception):
    """The backend failed for this request (not a timeout)."""


class GenerationBackend(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def start(self) -> None: ...

    async def generate(self, request: GenerationInput) -> GenerationOutput: ...

    async def close(self) -> None: ...


@runtime_checkable
class HasTokenizer(Protocol):
    """A backend that renders prompts with the model's own tokenizer locally (vLLM engine)."""

    def control_tokens(self) -> tuple[str, ...]:
        """The tokenizer's special and added tokens (after ``start``): what untrusted text
        must never contain."""
        ...


@runtime_checkable
class ReportsHealth(Protocol):
    """A backend that can tell it died (vLLM's engine core process): the pod must restart."""

    def alive(self) -> bool: ...


@runtime_checkable
class CountsTokens(Protocol):
    """A backend that holds the model's tokenizer and can count tokens exactly."""

    def count_tokens(self, text: str) -> int: ...


def option_logprobs(top: dict[str, float], letters: tuple[str, ...]) -> dict[str, float] | None:
    """Logprobs of the option letters among the first token's top candidates (tokens are
    compared stripped, so ``" A"`` counts as ``A``); letters not among them are left out."""
    if not letters:
        return None
    found: dict[str, float] = {}
    for token, logprob in top.items():
        letter = token.strip()
        if letter in letters and logprob > found.get(letter, float("-inf")):
            found[letter] = logprob
    return found
