"""Build the configured backend."""

from __future__ import annotations

from services.generation.backends.base import GenerationBackend
from services.generation.backends.openai_compat import OpenAIBackend
from services.generation.settings import GenerationSettings


def make_backend(settings: GenerationSettings) -> GenerationBackend:
    if settings.backend == "openai":
        return OpenAIBackend(settings.openai)
    from services.generation.backends.vllm_engine import VllmEngineBackend

    return VllmEngineBackend(settings.vllm)
