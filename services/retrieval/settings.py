"""Settings of the retrieval service (prefix ``ALIGNSTREAM_RETRIEVAL_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.embedders import EmbedderSettings
from shared.settings import ServiceSettings


class RetrievalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_RETRIEVAL_", extra="ignore")

    group_id: str = "alignstream-retrieval"
    memory_ready_timeout_s: float = Field(default=600.0, gt=0)
    """After a Redis failure, how long to wait for it to load and re-index before a search."""
    batch_max: int = Field(default=64, ge=1)
    """Most requests taken together (their queries are embedded in one call)."""
    batch_wait_ms: int = Field(default=5, ge=0)
    ef_runtime: int = Field(default=100, ge=1)
    """HNSW search breadth: recall vs latency."""
    candidates_factor: int = Field(default=2, ge=1)
    """Fetch top_k x this many hits before ordering and budget trimming."""
    infer_jurisdiction: bool = True
    """When a request names no jurisdiction, narrow to the regions its question mentions (as
    OPO does for law questions), plus global rules."""
    jurisdictions_refresh_s: float = Field(default=5.0, gt=0)
    """How often the list of known jurisdictions is re-read from the index."""
    drpo_prompt_set: str = "default"
    """DRPO prompt set (``alignstream prompts load``) of requests that name none."""
    drpo_k: int = Field(default=2, ge=0, le=32)
    """In-context examples picked by similarity for a DRPO request that sets no ``examples_k``."""
    prompt_sets_refresh_s: float = Field(default=10.0, gt=0)
    """How long a prompt set read from Redis is reused before it is read again."""
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
