"""Settings of the ingest service (prefix ``ALIGNSTREAM_INGEST_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.embedders import EmbedderSettings
from shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_INGEST_", extra="ignore")

    group_id: str = "alignstream-ingest"
    memory_ready_timeout_s: float = Field(default=600.0, gt=0)
    """At start-up, how long to wait for Redis to load its data and the indexes to catch up
    (a large memory after a Redis restart); the chart derives it from the start-up probe."""
    batch_max: int = Field(default=256, ge=1)
    """Most rule events taken (and embedded) together. Each batch ends with a tail in which the
    embedder waits (the last write, the confirmations, the commit, decoding the next batch):
    52 ms at 256, 117 ms at 1024 on 2 cores, 10 % and 6 % of a batch's time. Larger batches
    load faster (1024: +3.5 %) but hold the event loop longer (decoding, confirming), which the
    fast lane's edits wait for: at 1024 their p99 under a bulk load rose from 215 to 246 ms."""
    batch_wait_ms: int = Field(default=20, ge=0)
    """How long to wait for more events when fewer than ``batch_max`` are buffered."""
    live_batch_max: int = Field(default=32, ge=1)
    """Most events taken together from the fast lane (``rules.live``: small edits)."""
    live_batch_wait_ms: int = Field(default=1, ge=0)
    """How long the fast lane waits to fill a batch (a live edit should not wait for company)."""
    audit_chain: bool = True
    """Chain ``audit.entries`` into each tenant's hash chain on ``audit.log``."""
    history_max_versions: int = Field(default=1000, ge=1, le=100_000)
    """Versions of one rule kept in its history (``rules history``); the oldest go first."""
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
