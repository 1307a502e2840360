"""The gateway on the real stack for tests: ingest and retrieval with the real embedder,
generation with a scripted backend (fast, and told what to do by the question), and gateways
built on demand with the settings a test needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from services.gateway.app import GatewayService
from services.gateway.settings import GatewaySettings
from services.generation.backends.base import BackendError, GenerationInput, GenerationOutput
from services.retrieval.settings import RetrievalSettings
from shared.embedders.use import UniversalSentenceEncoder
from shared.testing.backends import ScriptedBackend

OpenGateway = Callable[..., AbstractAsyncContextManager[GatewayService]]


class EchoBackend(ScriptedBackend):
    """Echoes the prompt's last message in words (streamed when asked); ``fail`` raises,
    ``slow N`` waits N seconds first."""

    model = "echo-1"

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        question = str(request.messages[-1]["content"])
        if "fail" in question:
            raise BackendError("scripted failure")
        if "slow " in question:
            await asyncio.sleep(float(question.split("slow ")[1].split()[0]))
        words = [f"{w} " for w in ("echo:", *question.split()[:40])]
        for word in words:
            if request.on_text is not None:
                request.on_text(word)
                await asyncio.sleep(0.01)
        return GenerationOutput(text="".join(words), finish_reason="stop", prompt_tokens=7,
                                completion_tokens=len(words), ttft_ms=1.0)  # fmt: skip


def gateway_opener(
    service_settings: dict[str, Any], prefix: str, embedder: UniversalSentenceEncoder
) -> OpenGateway:
    """``async with open_gateway(**overrides) as gateway``: a started gateway on a free port."""

    @contextlib.asynccontextmanager
    async def open_gateway(**overrides: Any) -> AsyncIterator[GatewayService]:
        settings = GatewaySettings(**{
            **service_settings,
            "group_id": f"{prefix}.gateway",
            "port": 0,
            "key_cache_s": 0.0,
            "request_timeout_s": 10.0,
            "retrieval": RetrievalSettings(**service_settings),
            **overrides,
        })  # fmt: skip
        async with GatewayService(settings, embedder=embedder) as gateway:
            yield gateway

    return open_gateway
