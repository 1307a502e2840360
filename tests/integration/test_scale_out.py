"""Many instances of a service on the real broker, joining and leaving under steady load."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from services.generation.settings import GenerationSettings
from services.ingest.settings import IngestSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings
from shared.testing.embedders import PacedEmbedder
from shared.testing.generation_fleet import GenerationFleet, grounded_request
from shared.testing.ingest_fleet import own_edit_outcomes
from shared.topic_tail import TopicTail
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS


def wide(kafka: KafkaSettings, prefix: str) -> KafkaSettings:
    """Topics of their own with 6 partitions each: room for 3 instances (the suite's have 2)."""
    return kafka.model_copy(update={"partitions_override": 6, "topic_prefix": f"{prefix}.wide."})


async def test_generation_scaled_1_3_1_under_load_answers_each_request_once(
    service_settings: dict[str, Any], prefix: str
) -> None:
    """Every scale step rebalances the whole group (aiokafka is eager): requests generating on
    a revoked partition are finished and committed within the grace, or aborted and answered by
    the next owner — no request is lost and none is generated to the end twice."""
    kafka = wide(service_settings["kafka"], prefix)
    settings = GenerationSettings(**{**service_settings, "kafka": kafka}, max_in_flight=32,
                                  group_id=f"{prefix}.generation", revoke_grace_s=0.3)  # fmt: skip
    async with GenerationFleet(settings, generate_s=3.0) as fleet:
        await fleet.scale_to(1)
        load = asyncio.create_task(fleet.load(rate_per_s=5, seconds=14))
        await asyncio.sleep(3)
        await fleet.scale_to(3)
        await asyncio.sleep(5)
        await fleet.scale_to(1)
        await load
        outcome = await fleet.settle()
    assert outcome.sent >= 40  # ~70 nominal (5 a second for 14 s); a loaded CI sent 60
    assert outcome.lost_requests == 0
    assert outcome.duplicate_answers == 0
    assert outcome.duplicate_generations == 0
    assert len(fleet.backends) == 3
    assert all(b.started for b in fleet.backends)


async def test_three_ingest_instances_never_call_a_clients_own_edit_stale(
    ingest_settings: IngestSettings, use_embedder: UniversalSentenceEncoder, prefix: str
) -> None:
    """Each edit reaches the group twice (log and fast lane), read by whichever instances own
    those partitions; the client takes the first confirmation of its event."""
    settings = ingest_settings.model_copy(update={"kafka": wide(ingest_settings.kafka, prefix)})
    outcomes = await own_edit_outcomes(settings, use_embedder, instances=3, edits=24)
    assert outcomes == {"applied": 24}


async def test_retrieval_scaled_1_3_1_under_load_grounds_each_request_once(
    retrieval_settings: RetrievalSettings, use_embedder: UniversalSentenceEncoder, prefix: str
) -> None:
    """A batch in hand when the group takes its partition is finished and committed before the
    next owner starts (shared/consumers.py): no request is grounded twice or lost."""
    # A session long enough for a batch in hand to finish within the revocation (the suite's
    # 1 s would end it: Tansu evicts a member that does not heartbeat through a rebalance).
    kafka = wide(retrieval_settings.kafka, prefix).model_copy(
        update={"session_timeout_ms": 8000, "heartbeat_interval_ms": 300}
    )
    settings = retrieval_settings.model_copy(update={"kafka": kafka})
    embedder = PacedEmbedder(use_embedder, 0.05)  # a batch in hand takes seconds
    await ensure_topics(settings.kafka)
    grounded: Counter[str] = Counter()
    sent: list[str] = []
    async with (
        AlignstreamClient(settings.kafka) as client,
        TopicTail(settings.kafka, settings.kafka.topics(CHAT_GROUNDED)) as tail,
        RetrievalService(settings, embedder=embedder),
    ):

        async def load(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                request = grounded_request(f"question {len(sent)}").request
                sent.append(request.request_id)
                await client.send(CHAT_REQUESTS, request)
                await asyncio.sleep(0.02)
            await client.flush()

        sending = asyncio.create_task(load(10))
        await asyncio.sleep(2)
        joining = [RetrievalService(settings, embedder=embedder) for _ in range(2)]
        await asyncio.gather(*(service.start() for service in joining))
        await asyncio.sleep(4)
        await asyncio.gather(*(service.stop() for service in joining))
        await sending
        deadline, last = time.monotonic() + 60, time.monotonic()
        while time.monotonic() < deadline and (
            len(grounded) < len(sent) or time.monotonic() - last < 2  # repeats come late
        ):
            for value in await tail.values(timeout_ms=200):
                grounded[events.GroundedRequest.model_validate_json(value).request.request_id] += 1
                last = time.monotonic()
    assert len(sent) > 200
    assert set(grounded) == set(sent)  # none lost
    assert [rid for rid, n in grounded.items() if n > 1] == []  # none grounded twice
