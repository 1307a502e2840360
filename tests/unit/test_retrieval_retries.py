"""A Redis hiccup in one search retries that search alone; the batch is grounded whole, and
searches in Redis at once stay within ``search_concurrency`` (the pool never runs dry)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any, cast

import numpy as np
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.retrieval.grounding import SEARCH_RETRIES, Grounding
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.embedders.base import Vectors
from shared.memory.retriever import Retrieved, RuleRetriever
from shared.prompt_sets import PromptSetStore


class OneDimension:
    name, dim = "one", 1

    async def embed(self, texts: list[str]) -> Vectors:
        return np.ones((len(texts), 1), dtype=np.float32)


class FlakyRetriever:
    """Fails the first search of each request in ``flaky`` with a pool error; counts how many
    searches run at once."""

    def __init__(self, flaky: set[str], failures: int = 1) -> None:
        self.flaky, self.failures = flaky, failures
        self.calls: dict[str, int] = {}
        self.running = self.most_running = 0

    async def retrieve(self, tenant: str, scope: Any, query: str, vector: bytes, *,
                       today: date) -> Retrieved:  # fmt: skip
        self.calls[query] = self.calls.get(query, 0) + 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.01)
            if query in self.flaky and self.calls[query] <= self.failures:
                raise RedisConnectionError("No connection available.")
            rule = events.RetrievedRule(rule_id=query, version=1, score=1.0, text=query)
            return Retrieved((rule,), events.SearchedScope(source="global"), ())
        finally:
            self.running -= 1


def grounding(retriever: FlakyRetriever, **settings: Any) -> Grounding:
    options = RetrievalSettings(retry_backoff_s=0.01, **settings)
    return Grounding(OneDimension(), cast(RuleRetriever, retriever),  # type: ignore[arg-type]
                     cast(PromptSetStore, None), options)  # fmt: skip


def requests(n: int) -> list[events.ChatRequest]:
    return [events.ChatRequest(tenant="acme", messages=(events.ChatMessage(
        role=events.Role.USER, content=f"q{i}"),)) for i in range(n)]  # fmt: skip


async def test_a_failed_search_is_retried_alone_and_the_batch_is_grounded() -> None:
    retriever = FlakyRetriever({"q3", "q7"})
    before = SEARCH_RETRIES._value.get()
    grounded = await grounding(retriever, search_concurrency=4).ground(
        requests(40), datetime.now(UTC)
    )
    assert [g.rules[0].rule_id for g in grounded] == [f"q{i}" for i in range(40)]
    assert retriever.calls["q3"] == 2  # retried once
    assert retriever.calls["q0"] == 1  # the others were searched once
    assert SEARCH_RETRIES._value.get() - before == 2
    assert retriever.most_running <= 4


async def test_a_search_that_keeps_failing_fails_its_batch() -> None:
    retriever = FlakyRetriever({"q1"}, failures=10)
    with pytest.raises(RedisConnectionError):
        await grounding(retriever, search_attempts=3).ground(requests(3), datetime.now(UTC))
    assert retriever.calls["q1"] == 3
