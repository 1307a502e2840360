"""The settings of any OpenAI-compatible endpoint, and its client.

Generation's ``openai`` backend, the judge and the OpenAI embedder each subclass it with their
own environment prefix, defaults and extra fields, so an endpoint is configured the same way
everywhere (``..._BASE_URL``, ``..._MODEL``, ``..._API_KEY``, ``..._TIMEOUT_S``,
``..._MAX_RETRIES``).
"""

from __future__ import annotations

from openai import AsyncOpenAI
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpenAIEndpoint(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    base_url: str | None = None
    """None: the endpoint is not configured (each user says what that means)."""
    model: str = "gpt-4o-mini"
    api_key: SecretStr = SecretStr("EMPTY")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    """Retries of the ``openai`` client itself (connection errors, 429, 5xx)."""

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key.get_secret_value(),
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )
