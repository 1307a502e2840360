"""Real broker and Redis for integration tests.

The project's own local stack is started once per session on free ports, unless
``KAFKA_BOOTSTRAP`` and ``REDIS_URL`` point at existing servers (Apache Kafka, Redis Stack).
Each test gets its own topic prefix and Redis key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker
from redis.exceptions import ResponseError

from services.grading.app import GradingService
from services.grading.settings import GradingSettings
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared.devstack.servers import ValkeyServer, free_port, servers_for_testing
from shared.devstack.tiny_model import build_tiny_model
from shared.embedders.use import UniversalSentenceEncoder
from shared.kafka import ensure_topics, make_broker
from shared.redis import command, make_redis
from shared.settings import KafkaSettings, ObservabilitySettings, RedisSettings
from shared.tenants import ApiKeys
from shared.testing.judge import KeywordJudgeServer
from shared.testing.topics import TopicReader
from tests.integration.gateway_stack import OpenGateway, gateway_opener
from tests.integration.helpers import FastModel

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with servers_for_testing(tmp_path_factory.mktemp("stack")) as env:
        yield env


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Redis (Valkey + search modules, AOF) for this test alone: to kill, restart or lock."""
    server = ValkeyServer(tmp_path / "redis", free_port())
    server.state_dir.mkdir()
    server.start(timeout_s=30)
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def kafka_settings(servers: dict[str, str], prefix: str) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap=servers["KAFKA_BOOTSTRAP"],
        topic_prefix=f"{prefix}.",
        partitions_override=2,
        session_timeout_ms=1000,
        heartbeat_interval_ms=200,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
def redis_settings(servers: dict[str, str], prefix: str) -> RedisSettings:
    return RedisSettings(url=servers["REDIS_URL"], key_prefix=prefix)


@pytest.fixture
async def redis_client(redis_settings: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    client = make_redis(redis_settings)
    yield client
    # Drop this test's index and keys.
    for index in await command(client, "FT._LIST"):
        if index.decode().startswith(f"{redis_settings.key_prefix}:"):
            with contextlib.suppress(ResponseError):
                await command(client, "FT.DROPINDEX", index)
    async for key in client.scan_iter(match=f"{redis_settings.key_prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def keys(
    redis_settings: RedisSettings, redis_client: aioredis.Redis
) -> AsyncIterator[ApiKeys]:
    """Tenants' API keys in this test's Redis."""
    store = ApiKeys.from_settings(redis_settings)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def reader(kafka_settings: KafkaSettings) -> TopicReader:
    return TopicReader(kafka_settings)


@pytest.fixture
async def client_broker(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaBroker]:
    """A started broker used as a plain producer by the test."""
    broker = make_broker(kafka_settings, client_id="test-client")
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture
def observability() -> ObservabilitySettings:
    return ObservabilitySettings(http_host="127.0.0.1", http_port=0, log_json=False)


@pytest.fixture
def service_settings(
    kafka_settings: KafkaSettings,
    redis_settings: RedisSettings,
    observability: ObservabilitySettings,
) -> dict[str, Any]:
    """What every service under test shares: this test's servers and prefixes."""
    return {
        "kafka": kafka_settings,
        "redis": redis_settings,
        "observability": observability,
        "max_message_bytes": 65_536,
        "shutdown_timeout_s": 30.0,  # a stuck shutdown phase fails fast instead of hanging
    }


@pytest.fixture
def ingest_settings(service_settings: dict[str, Any], prefix: str) -> IngestSettings:
    return IngestSettings(**service_settings, group_id=f"{prefix}.ingest")


@pytest.fixture
def retrieval_settings(service_settings: dict[str, Any], prefix: str) -> RetrievalSettings:
    return RetrievalSettings(**service_settings, group_id=f"{prefix}.retrieval")


@pytest.fixture
async def ingest(
    ingest_settings: IngestSettings,
    use_embedder: UniversalSentenceEncoder,
    redis_client: aioredis.Redis,
) -> AsyncIterator[IngestService]:
    async with IngestService(ingest_settings, embedder=use_embedder) as service:
        yield service


@pytest.fixture
async def retrieval(
    retrieval_settings: RetrievalSettings,
    use_embedder: UniversalSentenceEncoder,
    redis_client: aioredis.Redis,
) -> AsyncIterator[RetrievalService]:
    async with RetrievalService(retrieval_settings, embedder=use_embedder) as service:
        yield service


@pytest.fixture
def open_gateway(
    service_settings: dict[str, Any], prefix: str, use_embedder: UniversalSentenceEncoder
) -> OpenGateway:
    """``async with open_gateway(**overrides)``: a gateway on this test's stack."""
    return gateway_opener(service_settings, prefix, use_embedder)


@pytest.fixture
async def pipeline(ingest: IngestService, retrieval: RetrievalService, generation: Any) -> None:
    """The services behind the gateway (with the test module's own ``generation``)."""


@pytest.fixture
def exam_root(tmp_path: Path) -> Path:
    """The grading data root of this test, with the exam fixtures in tenant acme's folder
    (a job names them relative to it, e.g. ``exam_en.jsonl``)."""
    root = tmp_path / "exams"
    shutil.copytree(FIXTURES, root / "acme")
    return root


@pytest.fixture
def grading_settings(
    service_settings: dict[str, Any], prefix: str, exam_root: Path
) -> GradingSettings:
    return GradingSettings(**service_settings, group_id=f"{prefix}.grading", window=4,
                           sweep_interval_s=0.2, progress_interval_s=0.0,
                           unsent_after_s=2.0, data_root=exam_root)  # fmt: skip


@pytest.fixture
async def grading(
    grading_settings: GradingSettings, redis_client: aioredis.Redis
) -> AsyncIterator[GradingService]:
    async with GradingService(grading_settings) as service:
        yield service


@pytest.fixture
async def fast_model() -> AsyncIterator[FastModel]:
    async with FastModel() as server:
        yield server


@pytest.fixture
async def judge() -> AsyncIterator[KeywordJudgeServer]:
    """A deterministic judge behind a real OpenAI-compatible HTTP endpoint."""
    async with KeywordJudgeServer() as server:
        yield server


@pytest.fixture
def cli_env(
    kafka_settings: KafkaSettings, redis_settings: RedisSettings, exam_root: Path
) -> dict[str, str]:
    """Environment pointing a CLI or service subprocess at this test's broker, topics, keys
    and exam folder."""
    return {
        "KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "ALIGNSTREAM_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "REDIS_URL": redis_settings.url.get_secret_value(),
        "ALIGNSTREAM_REDIS_KEY_PREFIX": redis_settings.key_prefix,
        "ALIGNSTREAM_GRADING_DATA_ROOT": str(exam_root),
    }


@pytest.fixture
def judged_cli_env(cli_env: dict[str, str], judge: KeywordJudgeServer) -> dict[str, str]:
    """``cli_env`` with the keyword judge as the judge model."""
    return {**cli_env, "ALIGNSTREAM_JUDGE_BASE_URL": judge.base_url,
            "ALIGNSTREAM_JUDGE_MODEL": "keyword-judge"}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight chat model for the real vLLM engine (built here, nothing downloaded)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chat")
