"""Settings of the gateway (prefix ``ALIGNSTREAM_GATEWAY_``)."""

from __future__ import annotations

import re
import secrets
import socket

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.retrieval.settings import RetrievalSettings
from shared.events import Strategy
from shared.settings import ServiceSettings

INSTANCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


def default_instance() -> str:
    """The host's name plus a random suffix: two gateways on one host never share replies."""
    host = re.sub(r"[^A-Za-z0-9._\-]", "-", socket.gethostname())[:60] or "gateway"
    return f"{host}-{secrets.token_hex(3)}"


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_GATEWAY_", extra="ignore")

    group_id: str = "alignstream-gateway"
    host: str = "127.0.0.1"
    """Address the HTTP API listens on (the chart and compose open it inside their network)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """0 picks a free port."""
    instance: str = Field(default_factory=default_instance)
    """This instance's name: its reply topic is ``replies.<instance>`` (the chart sets the pod
    name). Deleted on a clean shutdown."""
    reply_lease_s: float = Field(default=90.0, ge=1.0)
    """How long this instance's reply topic outlives it when it dies without deleting it: the
    other instances' next sweep (every ``reply_sweep_every_s``) then deletes it."""
    reply_sweep_every_s: float = Field(default=300.0, ge=1.0)
    max_in_flight: int = Field(default=256, ge=1, le=100_000)
    """Chat requests open at once on this instance; beyond, 429 (the HPA scales on this
    gauge)."""
    max_in_flight_per_tenant: int | None = Field(default=None, ge=1, le=100_000)
    """Of those, the most one tenant may hold; None: three quarters of ``max_in_flight``, so
    the others always find room. Beyond, 429."""
    max_in_flight_per_key: int | None = Field(default=None, ge=1, le=100_000)
    """The most one API key may hold; None: half of the tenant's cap. Beyond, 429."""
    default_rate_limit_per_s: float | None = Field(default=20.0, gt=0, le=1e6)
    """The request rate of keys created without one (``tenants create-key --rate-limit``
    sets a key's own); a token bucket per key in Redis, shared by every instance, with a
    second's worth of burst. None: such keys are not limited."""
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    """A request head (request line and headers) over this gets 431 before the app sees it."""
    max_headers: int = Field(default=100, ge=8, le=10_000)
    """A request with more headers gets 431 before the app sees it."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    """A chat request without its answer after this long gets 504."""
    shutdown_timeout_s: float = Field(default=150.0, gt=0)
    """The shutdown's budget: open requests are answered first (up to ``request_timeout_s``)."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Request bodies over this are refused (413) before they are parsed."""
    default_max_tokens: int = Field(default=512, ge=1, le=32_768)
    """``max_tokens`` of a request that sets none."""
    default_strategy: Strategy = Strategy.OPO
    """What the model ``alignstream`` answers with (``alignstream:<strategy>`` picks one)."""
    key_cache_s: float = Field(default=1.0, ge=0)
    """How long a verified API key is reused before Redis is asked again (a revoked key stops
    working within this time); 0: every request asks."""
    rules_wait_timeout_s: float = Field(default=30.0, gt=0)
    """``?wait=true``: how long to wait for ingest's confirmation before 504."""
    sse_ping_s: float = Field(default=15.0, gt=0)
    """Streams send an SSE comment this often while waiting (proxies close idle streams)."""
    check_min_score: float | None = Field(default=0.15, ge=-1.0, le=1.0)
    """``POST /v1/rules/applicable`` without ``min_score``: rules less similar to the text than
    this (cosine) are not returned as applicable. 0.15 suits the default USE embedder, whose
    unrelated texts score about -0.05 to 0.12 and related ones 0.2 to 0.6; tune it for another
    embedder. None: no threshold (every rule in scope, best first)."""
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    """The check endpoint searches the memory as retrieval does (same ``ALIGNSTREAM_RETRIEVAL_``
    options, the same embedder)."""

    @field_validator("instance")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not INSTANCE_PATTERN.fullmatch(value):
            raise ValueError("letters, digits, '.', '_' and '-', at most 100, no leading '.'")
        return value
