"""A judge: any OpenAI-compatible chat model at temperature 0, verdicts cached in Redis.

The cache key is the model name plus the rendered prompt, so re-running a job (or another job
with the same items) costs no model calls. Replies are parsed strictly; an unparseable one is
retried with a reminder, up to ``max_attempts``, then counted as unparseable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from openai import APIError
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.grading.judge.prompts import JudgePrompt, parse_verdict
from shared.openai_endpoint import OpenAIEndpoint
from shared.redis import make_redis
from shared.settings import RedisSettings

JUDGMENTS = Counter(
    "alignstream_judge_verdicts_total",
    "Judge verdicts, by prompt and verdict.",
    ["prompt", "verdict"],
)
JUDGE_CALLS = Counter(
    "alignstream_judge_calls_total",
    "Judge requests: model calls or cache hits.",
    ["prompt", "source"],
)


NO_JUDGE_FIX = (
    "set ALIGNSTREAM_JUDGE_BASE_URL (and _MODEL, _API_KEY) in the grading service's environment "
    "and restart it (the CLI's environment does not reach the service)"
)
"""What to do when a job needs a judge and the grading service has none."""


class JudgeSettings(OpenAIEndpoint):
    """The judge model (``ALIGNSTREAM_JUDGE_``): any OpenAI-compatible chat endpoint; no
    ``base_url``: no judge (jobs that need one fail with a clear error)."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_JUDGE_", extra="ignore")

    max_attempts: int = Field(default=3, ge=1)
    cache_ttl_s: int = Field(default=90 * 24 * 3600, ge=1)


class OptimizerSettings(JudgeSettings):
    """DRPO's optimizer model (``ALIGNSTREAM_OPTIMIZER_``): proposes prompt rewrites; no
    ``base_url``: the judge's endpoint serves as optimizer too."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_OPTIMIZER_", extra="ignore")


class JudgeError(Exception):
    """The judge endpoint failed (not an unparseable reply)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    label: str | None
    """One of the prompt's labels; None: unparseable after every attempt."""
    raw: str
    cached: bool
    attempts: int


class Judge:
    def __init__(
        self, settings: JudgeSettings, redis: aioredis.Redis, key_prefix: str,
        *, role: str = "judge",
    ) -> None:  # fmt: skip
        if settings.base_url is None:
            raise JudgeError("the grading service has no judge: " + NO_JUDGE_FIX)
        self.settings = settings
        self.redis = redis
        self.prefix = f"{key_prefix}:{role}"
        self._client = settings.client()

    async def close(self) -> None:
        await self._client.close()

    def cache_key(self, name: str, rendered: str) -> str:
        """Model + rendered prompt: the same question to the same model is asked once."""
        digest = hashlib.sha256(f"{self.settings.model}\0{rendered}".encode()).hexdigest()
        return f"{self.prefix}:{name}:{digest}"

    async def judge(self, prompt: JudgePrompt, /, **fields: str) -> Verdict:
        rendered = prompt.render(**fields)
        key = self.cache_key(prompt.name, rendered)
        cached = await self.redis.get(key)
        if cached is not None:
            JUDGE_CALLS.labels(prompt.name, "cache").inc()
            data = json.loads(cached)
            return Verdict(data["label"], data["raw"], cached=True, attempts=data["attempts"])
        messages = [{"role": "user", "content": rendered}]
        label, raw, attempts = None, "", 0
        while label is None and attempts < self.settings.max_attempts:
            attempts += 1
            raw = await self._ask(prompt, messages)
            label = parse_verdict(raw, prompt.labels)
            messages += [{"role": "assistant", "content": raw},
                         {"role": "user", "content": prompt.reminder}]  # fmt: skip
        JUDGMENTS.labels(prompt.name, label or "unparseable").inc()
        record = {"label": label, "raw": raw[:2000], "attempts": attempts}
        await self.redis.set(key, json.dumps(record), ex=self.settings.cache_ttl_s)
        return Verdict(label, raw, cached=False, attempts=attempts)

    async def write(self, name: str, rendered: str, *, max_tokens: int = 512) -> str:
        """Free text from the same model (e.g. proposed principles), temperature 0, cached
        like verdicts."""
        text, _ = await self.write_cached(name, rendered, max_tokens=max_tokens)
        return text

    async def write_cached(
        self, name: str, rendered: str, *, max_tokens: int = 512
    ) -> tuple[str, bool]:
        """``write``, and whether the text came from the cache (no model call)."""
        key = self.cache_key(name, rendered)
        cached = await self.redis.get(key)
        if cached is not None:
            JUDGE_CALLS.labels(name, "cache").inc()
            return str(json.loads(cached)["text"]), True
        JUDGE_CALLS.labels(name, "model").inc()
        text = await self._complete([{"role": "user", "content": rendered}], max_tokens)
        await self.redis.set(key, json.dumps({"text": text}), ex=self.settings.cache_ttl_s)
        return text, False

    async def _ask(self, prompt: JudgePrompt, messages: list[dict[str, str]]) -> str:
        JUDGE_CALLS.labels(prompt.name, "model").inc()
        return await self._complete(messages, max_tokens=8)

    async def _complete(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        try:
            completion = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=max_tokens,
            )
        except APIError as exc:
            raise JudgeError(f"judge {self.settings.base_url}: {exc}") from exc
        return completion.choices[0].message.content or ""


@asynccontextmanager
async def judge_from_env(redis: RedisSettings) -> AsyncIterator[tuple[Judge, aioredis.Redis]]:
    """The judge configured in the environment and the Redis client of its cache; both closed
    on exit (for CLI commands)."""
    client = make_redis(redis)
    try:
        judge = Judge(JudgeSettings(), client, redis.key_prefix)
        try:
            yield judge, client
        finally:
            await judge.close()
    finally:
        await client.aclose()
