"""What a research method gets to work with: the pipeline, the judge and optimizer, its own
checkpoints and a progress reporter. Methods see these contracts, not the service."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import JsonValue

from services.grading.judge.client import NO_JUDGE_FIX, Judge
from services.grading.research.store import ResearchStore
from shared import events
from shared.embedders import Embedder
from shared.memory.search import RuleSearcher
from shared.prompt_sets import PromptSetStore


class ResearchError(Exception):
    """A job cannot go on (a missing file, no judge): it ends FAILED with this message."""


class Pipeline(Protocol):
    """The deployed pipeline, as a research job uses it (``AlignstreamClient`` is one)."""

    async def ask(
        self,
        requests: Iterable[events.ChatRequest],
        *,
        timeout_s: float = 120.0,
        on_response: Callable[[events.ChatResponse], None] | None = None,
    ) -> dict[str, events.ChatResponse]: ...

    async def publish_rules(
        self, rule_events: Sequence[events.RulesTopicEvent], *, wait: bool = False,
        timeout_s: float = 60.0,
    ) -> list[events.RuleIndexed]: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class Checkpoints:
    """A job's own checkpoints (JSON values by name) and its set of seen digests."""

    store: ResearchStore
    sid: str

    async def get(self, name: str) -> JsonValue | None:
        return await self.store.checkpoint(self.sid, name)

    async def get_many(self, names: Iterable[str]) -> list[JsonValue | None]:
        return await self.store.checkpoints(self.sid, names)

    async def put(self, name: str, value: JsonValue) -> None:
        await self.store.set_checkpoint(self.sid, name, value)

    async def unseen(self, digests: list[str]) -> list[bool]:
        return await self.store.unseen(self.sid, digests)

    async def commit(self, seen: Iterable[str], values: dict[str, JsonValue]) -> None:
        await self.store.commit(self.sid, seen, values)


Report = Callable[[str, int, int], Awaitable[None]]
"""``(stage, done, total)``: publish progress (throttled by the runner)."""


@dataclass(slots=True)
class JobTally:
    """Judge and optimizer calls of this run of the job: made, or answered from the cache
    (work a previous run of the job already paid for)."""

    model_calls: int = 0
    cached_calls: int = 0

    def add(self, cached: bool) -> None:
        self.count(model=int(not cached), cached=int(cached))

    def count(self, *, model: int, cached: int) -> None:
        self.model_calls += model
        self.cached_calls += cached


@dataclass(slots=True)
class JobContext:
    job: events.ResearchJob
    pipeline: Pipeline
    judge: Judge | None
    optimizer: Judge | None
    checkpoints: Checkpoints
    prompt_sets: PromptSetStore
    data_root: Path
    """The grading data root: a job reads its inputs from its tenant's folder there
    (``dataset_path``)."""
    output_root: Path
    """Where the job's tenant folder for outputs is (the data root on a local stack)."""
    report: Report
    embedder: Callable[[], Awaitable[Embedder]]
    """The service's embedder, started on first use (only discovery needs it)."""
    searcher: Callable[[Embedder], RuleSearcher]
    redis: aioredis.Redis
    key_prefix: str
    timeout_s: float = 3600.0
    tally: JobTally = field(default_factory=JobTally)
    started: float = field(default_factory=time.monotonic)

    @property
    def tenant(self) -> str:
        return self.job.tenant

    @property
    def output_folder(self) -> Path:
        """Where this job's output files go: ``<output_root>/<tenant>/research/<job_id>/``."""
        return self.output_root / self.tenant / "research" / self.job.job_id

    def output_name(self, path: Path) -> str:
        """How results name an output: relative to the tenant's output folder."""
        return str(path.relative_to(self.output_root / self.tenant))

    def need_judge(self) -> Judge:
        if self.judge is None:
            raise ResearchError(
                "this job needs a judge, and the grading service has none: " + NO_JUDGE_FIX
            )
        return self.judge

    def need_optimizer(self) -> Judge:
        """The optimizer model; the judge's endpoint when none is configured."""
        optimizer = self.optimizer or self.judge
        if optimizer is None:
            raise ResearchError(
                "this job needs an optimizer model (ALIGNSTREAM_OPTIMIZER_BASE_URL) or a judge"
            )
        return optimizer
