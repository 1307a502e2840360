"""The generation backends by name (``ALIGNSTREAM_GENERATION_BACKEND``).

Adding a backend: a class with the ``GenerationBackend`` methods in this folder, its settings in
``services/generation/settings.py``, and a line here (and in the settings' ``backend`` Literal).
"""

from __future__ import annotations

from collections.abc import Callable

from services.generation.backends.base import GenerationBackend
from services.generation.settings import GenerationSettings


def _vllm(settings: GenerationSettings) -> GenerationBackend:
    # Imported on use: the engine pulls in torch and vLLM.
    from services.generation.backends.vllm_engine import VllmEngineBackend

    return VllmEngineBackend(settings.vllm)


def _openai(settings: GenerationSettings) -> GenerationBackend:
    from services.generation.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(settings.openai)


BACKENDS: dict[str, Callable[[GenerationSettings], GenerationBackend]] = {
    "vllm": _vllm,
    "openai": _openai,
}


def make_backend(settings: GenerationSettings) -> GenerationBackend:
    return BACKENDS[settings.backend](settings)
