"""Settings of the retrieval service (prefix ``ALIGNSTREAM_RETRIEVAL_``)."""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.embedders import EmbedderSettings
from shared.memory.retriever import RetrievalOptions
from shared.memory.schema import RuleSchema
from shared.memory.search import Fusion, RuleSearcher
from shared.memory.term_stats import TermStats
from shared.prompt_sets import DrpoSettings
from shared.settings import ServiceSettings


class RetrievalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_RETRIEVAL_", extra="ignore")

    group_id: str = "alignstream-retrieval"
    memory_ready_timeout_s: float = Field(default=600.0, gt=0)
    """After a Redis failure, how long to wait for it to load and re-index before a search."""
    batch_max: int = Field(default=64, ge=1)
    """Most requests taken together (their queries are embedded in one call)."""
    batch_wait_ms: int = Field(default=5, ge=0)
    search_concurrency: int = Field(default=16, ge=1, le=1000)
    """Searches in Redis at once. Each takes up to two connections (vector and full text):
    keep twice this within ``ALIGNSTREAM_REDIS_MAX_CONNECTIONS`` (64), so that no search waits
    for the pool, where a contended CPU made waits time out ("No connection available")."""
    search_attempts: int = Field(default=3, ge=1, le=10)
    """A search that fails on a Redis connection error or time-out is retried alone (backing
    off ``retry_backoff_s`` times the attempt) before its batch fails and is redelivered whole."""
    watermark_wait_s: float = Field(default=5.0, ge=0.0, le=60.0)
    """How long a request with ``min_watermark`` waits for the memory to apply the rule log
    that far; past it the request is answered with an error, never from an older memory."""
    ef_runtime: int = Field(default=100, ge=1)
    """HNSW search breadth: recall vs latency."""
    candidates_factor: int = Field(default=2, ge=1, le=100)
    """Fetch at least top_k x this many hits from each search before fusion and budget."""
    lexical: bool = True
    """Hybrid retrieval: fuse a full-text (BM25) search with the vector search."""
    hybrid_candidates: int = Field(default=20, ge=1, le=1000)
    """Candidates taken from each of the two searches before fusion."""
    rrf_k: int = Field(default=60, ge=1, le=10_000)
    """Reciprocal-rank fusion constant: a rule at rank r scores weight / (rrf_k + r)."""
    vector_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    lexical_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    lexical_max_share: float = Field(default=0.02, gt=0.0, le=1.0)
    """Full text leaves out terms in more than this share of the tenant's rules (and over
    5,000 of them): they cost the most and weigh the least (``shared/memory/term_stats.py``)."""
    lexical_max_terms: int = Field(default=48, ge=1, le=48)
    infer_jurisdiction: bool = True
    """When a request names no jurisdiction, search under the nodes its question names (as
    OPO does for law questions), else the tenant's default scope, plus global rules."""
    jurisdictions_refresh_s: float = Field(default=5.0, gt=0)
    """How often a tenant's jurisdiction tree is re-read from Redis."""
    drpo: DrpoSettings = Field(default_factory=DrpoSettings)
    prompt_sets_refresh_s: float = Field(default=10.0, gt=0)
    """How long a prompt set read from Redis is reused before it is read again."""
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)

    def fusion(self) -> Fusion:
        return Fusion(self.rrf_k, self.vector_weight, self.lexical_weight)

    def searcher(self, client: aioredis.Redis, schema: RuleSchema) -> RuleSearcher:
        stats = TermStats(client, schema, max_share=self.lexical_max_share,
                          max_terms=self.lexical_max_terms)  # fmt: skip
        return RuleSearcher(client, schema, ef_runtime=self.ef_runtime, fusion=self.fusion(),
                            stats=stats)  # fmt: skip

    def retrieval_options(self) -> RetrievalOptions:
        return RetrievalOptions(
            lexical=self.lexical,
            candidates=self.hybrid_candidates,
            candidates_factor=self.candidates_factor,
            infer_jurisdiction=self.infer_jurisdiction,
            refresh_s=self.jurisdictions_refresh_s,
        )
