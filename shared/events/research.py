"""Research jobs: the seed methods run as resumable jobs of the grading service.

A CLI (or any producer) publishes a ``ResearchJob``; the grading service runs it, keeps its
state in Redis (so a restart resumes it) and publishes ``ResearchProgress`` events, the last
one ``final`` with the result. One job spec per method, chosen by ``method``:

- ``prompts-optimize``: DRPO's beam search over alignment system prompts;
- ``course-correction-synth``: C2-SYN's ranked course-corrections turned into preference pairs;
- ``constitution-discover``: IterAlign's rounds of red-team -> judge -> principles;
- ``questions-generate``: OPO's exam questions written from the tenant's rules, judge-filtered.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints

from shared.events.base import Contract, Event, Identifier, TenantId, new_id
from shared.events.exams import JobStatus
from shared.events.rules import RuleStatus

DataFile = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
"""A file in the tenant's folder of the grading data root, as the service sees it."""


class PromptOptimizeSpec(Contract):
    """DRPO: find the alignment system prompt of the deployed model by beam search."""

    method: Literal["prompts-optimize"] = "prompts-optimize"
    seeds: tuple[DataFile, ...] = Field(min_length=1, max_length=16)
    """Seed query files (DRPO's alpaca/lima JSON, ``mal_train.txt``, JSONL with ``prompt``)."""
    start_set: Identifier = "default"
    """The prompt set the search starts from (its examples are kept)."""
    output_set: Identifier = "drpo-optimized"
    """Name under which the best prompt set is loaded for the tenant (retrieval serves it)."""
    beam: int = Field(default=2, ge=1, le=8)
    actions: int = Field(default=3, ge=1, le=8)
    """Rewrites the optimizer proposes per beam node and level."""
    depth: int = Field(default=20, ge=1, le=50)
    queries_per_level: int = Field(default=1, ge=1, le=64)
    """Training queries each candidate is answered and judged on (DRPO: one per step)."""
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of the seed queries kept out of the search; each level's best prompt is scored
    on them (with an interval)."""
    holdout_limit: int = Field(default=40, ge=1, le=1000)
    examples_k: int = Field(default=2, ge=0, le=32)
    max_tokens: int = Field(default=256, ge=1, le=4096)
    seed: int = 0


class CourseCorrectionSynthSpec(Contract):
    """C2-SYN: preference pairs that teach timely course-correction."""

    method: Literal["course-correction-synth"] = "course-correction-synth"
    dataset: DataFile
    """PKU-SafeRLHF rows: ``prompt``, ``response_0/1``, ``is_response_0/1_safe``."""
    corrections: int = Field(default=4, ge=1, le=16)
    """Corrections per request, at evenly spaced points of the harmful response (C2-SYN: 4)."""
    min_words: int = Field(default=80, ge=1, le=10_000)
    """Only harmful responses longer than this many words are used (C2-SYN: 80)."""
    limit: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=128, ge=1, le=4096)
    verify: bool = True
    """Keep a synthesized correction only when the judge confirms it steers away."""
    chunk: int = Field(default=16, ge=1, le=256)
    """Requests per step; the job's progress is committed after each (what a resume keeps)."""
    seed: int = 0


class ConstitutionDiscoverSpec(Contract):
    """IterAlign: red-team prompts -> judged answers -> principles, for several rounds."""

    method: Literal["constitution-discover"] = "constitution-discover"
    prompts: DataFile
    rounds: int = Field(default=1, ge=1, le=50)
    """Most rounds; fewer when a round finds no harmful training answer or no new principle
    (``--until-stable`` is a high limit)."""
    holdout: float = Field(default=0.3, ge=0.05, le=0.95)
    status: RuleStatus = RuleStatus.PENDING
    max_principles: int = Field(default=20, ge=1, le=200)
    """Per round."""
    similarity: float = Field(default=0.85, ge=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=4096)
    seed: int = 0


class QuestionGenerateSpec(Contract):
    """OPO's question generation: one multiple-choice question per sampled active rule of the
    tenant, written by the deployed model, kept when the judge passes it."""

    method: Literal["questions-generate"] = "questions-generate"
    count: int = Field(default=20, ge=1, le=10_000)
    """Rules to sample (one question each)."""
    examples: DataFile | None = None
    """Few-shot exam file (OPO's CSV format, e.g. examples_law.csv)."""
    shots: int = Field(default=3, ge=0, le=16)
    max_tokens: int = Field(default=512, ge=16, le=4096)
    seed: int = 0


ResearchSpec = Annotated[
    PromptOptimizeSpec
    | CourseCorrectionSynthSpec
    | ConstitutionDiscoverSpec
    | QuestionGenerateSpec,
    Field(discriminator="method"),
]


class ResearchJob(Event):
    kind: Literal["research.job"] = "research.job"
    job_id: Identifier = Field(default_factory=new_id)
    tenant: TenantId
    spec: ResearchSpec

    @property
    def key(self) -> str:
        return self.job_id


class ResearchProgress(Event):
    """A research job's progress (``final=False``) and its end (``final=True``, with the result
    or the error)."""

    kind: Literal["research.progress"] = "research.progress"
    job_id: Identifier
    tenant: TenantId
    method: str
    status: JobStatus = JobStatus.RUNNING
    stage: str = ""
    done: int = 0
    total: int = 0
    final: bool = False
    error: str | None = None
    result: dict[str, JsonValue] = Field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def key(self) -> str:
        return self.job_id
