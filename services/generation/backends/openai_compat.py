"""Any OpenAI-compatible chat endpoint (a vLLM server, OpenAI, ...) via the openai client."""

from __future__ import annotations

import time
from typing import Any, cast

from openai import APIError, omit
from openai.types.chat import ChatCompletionMessageParam

from services.generation.backends.base import (
    BackendError,
    GenerationInput,
    GenerationOutput,
    option_logprobs,
)
from services.generation.prompts.opo import JOINED_TEMPLATE
from services.generation.settings import OpenAISettings


class OpenAIBackend:
    name = "openai-compatible"

    def __init__(self, settings: OpenAISettings) -> None:
        self.settings = settings
        self.model = settings.model
        self._client = settings.client()

    async def start(self) -> None:
        """Nothing to load; the endpoint is checked by the first request."""

    def logit_bias(self, letters: tuple[str, ...]) -> dict[str, int]:
        """+100 on each option letter's token: the first token is one of them (OPO)."""
        ids = self.settings.option_token_ids
        return {str(ids[letter]): 100 for letter in letters if letter in ids}

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        params = request.params
        # vLLM servers understand these; other servers ignore unknown body fields.
        extra: dict[str, Any] = {}
        if request.continue_final:
            extra = {"continue_final_message": True, "add_generation_prompt": False}
        if request.joined:  # opo-exact: exact on vLLM servers, which render the prompt
            extra |= {"chat_template": JOINED_TEMPLATE, "add_generation_prompt": False}
        if params.repetition_penalty != 1.0:
            extra["repetition_penalty"] = params.repetition_penalty
        bias = self.logit_bias(params.option_letters) if params.constrain_to_options else {}
        started = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        finish: str | None = None
        usage: Any = None
        first_top: dict[str, float] = {}
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], list(request.messages)),
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed if params.seed is not None else omit,
                stop=list(request.stop) or omit,
                logprobs=True if params.option_letters else omit,
                top_logprobs=20 if params.option_letters else omit,
                logit_bias=bias or omit,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=extra or None,
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        if ttft is None:
                            ttft = (time.perf_counter() - started) * 1000
                        parts.append(choice.delta.content)
                        if request.on_text is not None:
                            request.on_text(choice.delta.content)
                    if choice.logprobs and choice.logprobs.content and not first_top:
                        first_top = {
                            t.token: t.logprob for t in choice.logprobs.content[0].top_logprobs
                        }
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except APIError as exc:
            raise BackendError(f"{self.settings.base_url}: {exc}") from exc
        return GenerationOutput(
            text="".join(parts),
            finish_reason=finish,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            ttft_ms=ttft,
            option_logprobs=option_logprobs(first_top, params.option_letters),
        )

    async def close(self) -> None:
        await self._client.close()
