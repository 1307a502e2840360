"""What the grading service builds for research jobs: the pipeline client, the optimizer, the
lazily started embedder, and the runner that ties them to the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from services.grading.judge.client import Judge
from services.grading.records import scoped_id
from services.grading.research.context import Checkpoints, JobContext
from services.grading.research.runner import ResearchRunner
from services.grading.research.store import ResearchStore
from services.grading.settings import GradingSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders import Embedder, EmbedderSettings, make_embedder
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.prompt_sets import PromptSetStore
from shared.service import Publisher


@dataclass(slots=True)
class LazyEmbedder:
    """The embedder retrieval uses, started when a job first needs one (discovery)."""

    settings: EmbedderSettings
    embedder: Embedder | None = None
    owned: bool = True
    """Started here (closed here), not given by the caller."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self) -> Embedder:
        async with self._lock:
            if self.embedder is None:
                embedder = make_embedder(self.settings)
                await embedder.start()
                self.embedder = embedder
            return self.embedder

    async def close(self) -> None:
        if self.embedder is not None and self.owned:
            await self.embedder.close()


@dataclass(slots=True)
class Research:
    runner: ResearchRunner
    client: AlignstreamClient
    optimizer: Judge | None
    embedder: LazyEmbedder

    async def close(self) -> None:
        await self.runner.stop()
        await self.client.__aexit__(None, None, None)
        if self.optimizer is not None:
            await self.optimizer.close()
        await self.embedder.close()


async def start_research(
    settings: GradingSettings,
    redis: aioredis.Redis,
    judge: Judge | None,
    out: Publisher,
    embedder: Embedder | None = None,
) -> Research:
    prefix = settings.redis.key_prefix
    client = AlignstreamClient(settings.kafka)
    await client.__aenter__()
    optimizer = (
        Judge(settings.optimizer, redis, prefix, role="optimizer")
        if settings.optimizer.base_url is not None
        else None
    )
    lazy = LazyEmbedder(EmbedderSettings(), embedder, owned=embedder is None)
    store = ResearchStore(redis, prefix)
    prompt_sets = PromptSetStore(redis, prefix)

    def searcher(used: Embedder) -> RuleSearcher:
        return RuleSearcher(redis, RuleSchema(prefix, used.dim, used.name), ef_runtime=100)

    def make_context(
        job: events.ResearchJob, report: Callable[[str, int, int], Awaitable[None]]
    ) -> JobContext:
        return JobContext(
            job=job,
            pipeline=client,
            judge=judge,
            optimizer=optimizer,
            checkpoints=Checkpoints(store, scoped_id(job.tenant, job.job_id)),
            prompt_sets=prompt_sets,
            data_root=settings.data_root,
            output_root=settings.outputs,
            report=report,
            embedder=lazy.get,
            searcher=searcher,
            redis=redis,
            key_prefix=prefix,
            timeout_s=settings.research_timeout_s,
        )

    runner = ResearchRunner(
        store,
        out,
        make_context,
        lease_ms=int(settings.research_lease_s * 1000),
        progress_interval_s=settings.progress_interval_s,
    )
    return Research(runner, client, optimizer, lazy)
