"""Settings shared by every service, read from the environment.

Each block has its own prefix (``ALIGNSTREAM_KAFKA_``, ``ALIGNSTREAM_REDIS_``, ...); each service
adds its own block (``ALIGNSTREAM_INGEST_`` ...) that embeds these. The defaults run against the
local stack (``alignstream stack up``). ``KAFKA_BOOTSTRAP`` and ``REDIS_URL`` are accepted as the
conventional short names.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topics import MAX_PARTITIONS, TopicNames, TopicSpec, all_topics

LOCAL_KAFKA = "127.0.0.1:19092"
LOCAL_REDIS = "redis://127.0.0.1:16379/0"


class KafkaSettings(BaseSettings):
    """Broker connection and consumer timing."""

    model_config = SettingsConfigDict(
        env_prefix="ALIGNSTREAM_KAFKA_", extra="ignore", validate_by_name=True
    )

    bootstrap: str = Field(
        default=LOCAL_KAFKA,
        validation_alias=AliasChoices("ALIGNSTREAM_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP"),
    )
    """Comma-separated ``host:port`` list."""
    topic_prefix: str = ""
    """Prepended to every topic name (several environments on one cluster)."""
    partitions_override: int | None = Field(default=None, ge=1)
    """Create every topic with this many partitions (small local setups)."""
    partitions: dict[str, Annotated[int, Field(ge=1, le=MAX_PARTITIONS)]] = Field(
        default_factory=dict, max_length=64
    )
    """Per topic (its name without the prefix), the partitions it is created with and checked
    against, over ``shared/topics.py``'s default: JSON, e.g.
    ``ALIGNSTREAM_KAFKA_PARTITIONS='{"chat.grounded": 48}'`` (the chart's ``kafka.partitions``)."""
    replication_factor: int | None = Field(default=None, ge=1)
    """Copies of each topic created. None: the broker's ``default.replication.factor``, or as
    many as the cluster has brokers, up to 3 (``shared/topic_replication.py``)."""
    fetch_max_wait_ms: int = Field(default=10, ge=0)
    """How long a fetch may wait for data; bounds end-to-end latency on brokers whose fetch is
    not woken by new data (Tansu)."""
    chat_fetch_max_wait_ms: int = Field(default=10, ge=0)
    """The same for the consumers on a chat request's path (retrieval, generation, the reply
    readers), where each hop's wait adds to every answer: Tansu looks for data when a fetch
    arrives, then after half the wait, three quarters, and so on. 2 ms takes ~3 ms off a lone
    answer on the in-memory Tansu, but its polls cost CPU the engine needs (64 concurrent on 2
    cores: 0.84 of the raw engine instead of 0.90) and overload Tansu's ``s3://`` engine (its
    pipeline stalled under load). On Apache Kafka a fetch returns as soon as data arrives:
    raise both there (the chart and the compose file do)."""
    group_instance: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
    """Static group membership (KIP-345): this instance's stable name (the chart: the pod's
    name). Each consumer joins as ``<group_instance>.<topic>``; a restart within the session
    timeout then gets its partitions back without a rebalance of the group. None: dynamic
    membership (every restart rebalances)."""
    session_timeout_ms: int = Field(default=10_000, ge=100)
    heartbeat_interval_ms: int = Field(default=3_000, ge=50)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    request_timeout_ms: int = Field(default=40_000, ge=1000)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    rule_signing_key: SecretStr | None = None
    """Shared secret for rule-event signatures (``shared/signing.py``): publishers sign with it
    and ingest rejects rule events without a valid signature. None: signing off."""
    rule_signing_previous_key: SecretStr | None = None
    """Also accepted when verifying, while the key is being rotated."""
    pipeline_signing_key: SecretStr | None = None
    """Shared secret of the pipeline's own producers (gateway, retrieval, generation, grading,
    trusted clients): they sign every message that names a tenant on the chat path and the job
    topics (``shared/signing.py``), and their consumers dead-letter unsigned or forged ones, so
    a producer without it cannot speak for a tenant. None: off."""
    pipeline_signing_previous_key: SecretStr | None = None
    """Also accepted when verifying, while the pipeline key is being rotated."""

    @property
    def revocation_wait_s(self) -> float:
        """The longest a consumer may hold up a rebalance finishing its work: half a session
        (a broker may end the session of a member that does not rejoin within it; Tansu does,
        and the member's commits then fail)."""
        return self.session_timeout_ms / 2000

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @field_validator("partitions")
    @classmethod
    def _known_topics(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - {spec.name for spec in all_topics()})
        if unknown:
            raise ValueError(f"no such topic: {', '.join(unknown)} (alignstream topics list)")
        return value

    def partitions_of(self, spec: TopicSpec) -> int:
        """The partitions ``spec``'s topic is created with and checked against: this topic's
        setting, else the override of every topic, else the spec's default."""
        return self.partitions.get(spec.name) or self.partitions_override or spec.partitions

    def fetch_wait_ms(self, *, chat_path: bool) -> int:
        """The fetch wait of a consumer: the chat path's for a hop every answer waits for."""
        return self.chat_fetch_max_wait_ms if chat_path else self.fetch_max_wait_ms


class RedisSettings(BaseSettings):
    """Redis (with RediSearch + RedisJSON) connection."""

    model_config = SettingsConfigDict(
        env_prefix="ALIGNSTREAM_REDIS_", extra="ignore", validate_by_name=True
    )

    url: SecretStr = Field(
        default=SecretStr(LOCAL_REDIS),
        validation_alias=AliasChoices("ALIGNSTREAM_REDIS_URL", "REDIS_URL"),
    )
    """``redis://`` or ``rediss://`` (TLS) URL; may hold a password, hence secret. TLS options go
    in the query string, e.g. ``rediss://:pw@host:6380/0?ssl_ca_certs=/etc/ca.pem``."""
    password: SecretStr | None = None
    """The password, when the URL has none (the chart gives it from a Secret of its own, so the
    URL carries no secret). A password in the URL wins."""
    key_prefix: str = Field(default="alignstream", pattern=r"^[^{}]+$")
    """Prefix of every key and index the services create (no braces: a tenant's hash tag is
    the first ``{...}`` of its keys)."""
    wait_replicas: int = Field(default=0, ge=0, le=10)
    """A rule write is acknowledged (and its event committed) once this many replicas of its
    shard hold it: a primary lost afterwards loses none of it. 0: on the primary's word."""
    wait_timeout_s: float = Field(default=2.0, gt=0)
    cluster: bool = False
    """The URL names a node of a Redis Cluster: the client discovers the others, routes each
    command by its key's slot and each tenant's search to the shard of its hash tag."""
    socket_timeout_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=64, ge=1, le=10_000)
    """Connections a client opens at most; a command beyond waits (up to the socket timeout)
    for a free one instead of failing."""

    def auth(self) -> dict[str, str]:
        """Connection keywords for the password setting (redis-py: the URL's own wins)."""
        return {"password": self.password.get_secret_value()} if self.password else {}


class ObservabilitySettings(BaseSettings):
    """Logging and the metrics/health HTTP endpoint."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_", extra="ignore")

    log_level: str = "INFO"
    log_json: bool | None = None
    """One JSON object per line (for log shippers); False gives readable lines. Unset: readable
    on a terminal, JSON otherwise."""
    http_host: str = "127.0.0.1"
    """Address of the metrics/health endpoint: loopback unless a deployment opens it (the
    chart and compose set ``0.0.0.0`` inside their network)."""
    http_port: int = Field(default=0, ge=0, le=65535)
    """Port of ``/metrics``, ``/healthz`` and ``/readyz``; 0 picks a free port."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP endpoint for traces (``http://collector:4318``); None: tracing off."""
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces sampled (a request continues its caller's decision)."""


class ServiceSettings(BaseSettings):
    """What every service embeds; each service subclasses it with its own prefix."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    max_message_bytes: int = Field(default=1_048_576, ge=8192)
    """Larger messages go to the dead-letter topic unparsed; no message a service derives
    (grounded request, response, token piece, dead letter) is published larger than this."""
    dead_letter_original_bytes: int = Field(default=16_384, ge=0)
    """How much of a dead-lettered message's body its letter keeps (with its size and hash)."""
    shutdown_timeout_s: float = Field(default=60.0, gt=0)
    """The whole shutdown's budget: draining (work in flight finishing) takes what it needs of
    it, the broker stop and the close at least 5 s each after it. The chart's grace period is
    this plus 30 s."""
    retry_backoff_s: float = Field(default=0.5, gt=0)
    """Pause before a message whose processing failed transiently is retried."""
    group_id: str = "alignstream"
    """Consumer group of the service's subscribers (each service sets its own default)."""
