"""A wrong REDIS_URL is reported before the embedding model loads (seconds, not the model's
load time), for every command that needs both."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.cli import prompts, rules
from services.ingest import rebuild
from shared import events
from shared.devstack.servers import free_port
from shared.prompt_sets import PromptSet
from shared.settings import KafkaSettings, RedisSettings
from shared.testing.embedders import CountingEmbedder


@pytest.fixture
def dead_redis(monkeypatch: pytest.MonkeyPatch) -> RedisSettings:
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("REDIS_URL", url)
    return RedisSettings()


def test_search_fails_on_redis_before_loading_the_model(
    dead_redis: RedisSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = CountingEmbedder()
    monkeypatch.setattr(rules, "make_embedder", lambda _: embedder)
    with pytest.raises(RedisConnectionError):
        asyncio.run(rules._search("acme", "refunds?", events.RuleScope()))
    assert embedder.starts == 0


def test_prompt_sets_and_rebuild_fail_on_redis_before_loading_the_model(
    dead_redis: RedisSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = CountingEmbedder()
    monkeypatch.setattr(prompts, "make_embedder", lambda _: embedder)
    prompt_set = PromptSet(system="Be helpful.")
    with pytest.raises(RedisConnectionError):
        asyncio.run(prompts.store_prompt_set(prompt_set, dead_redis, "acme"))
    with pytest.raises(RedisConnectionError):
        asyncio.run(rebuild.rebuild(KafkaSettings(), dead_redis, embedder))
    assert embedder.starts == 0
