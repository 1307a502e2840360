"""Many instances of a service on the real broker, joining and leaving under steady load."""

from __future__ import annotations

import asyncio
from typing import Any

from services.generation.settings import GenerationSettings
from services.ingest.settings import IngestSettings
from shared.embedders.use import UniversalSentenceEncoder
from shared.settings import KafkaSettings
from shared.testing.generation_fleet import GenerationFleet
from shared.testing.ingest_fleet import own_edit_outcomes


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
    assert outcome.sent > 60
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
