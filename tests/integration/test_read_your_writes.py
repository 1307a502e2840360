"""Read-your-writes across services: a request carrying the watermark of a publish is searched
in a memory that holds the publish, whatever the interleaving of publishes and questions; a
watermark the memory never reaches is an error answer, not an answer from an older memory."""

from __future__ import annotations

import random

from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.memory.watermark import covers
from tests.samples import sample_rule


def question(min_watermark: dict[int, int]) -> events.ChatRequest:
    return events.ChatRequest(
        tenant="acme", min_watermark=min_watermark,
        messages=(events.ChatMessage(role=events.Role.USER, content="What is the refund window?"),),
    )  # fmt: skip


async def test_a_question_after_a_publish_never_sees_the_old_rule(
    ingest: IngestService, retrieval: RetrievalService, retrieval_settings: RetrievalSettings
) -> None:
    chooser = random.Random(7)
    version = 0
    async with AlignstreamClient(retrieval_settings.kafka) as client:
        for _ in range(12):  # interleavings: 1-3 publishes (no wait), then a question
            for _ in range(chooser.randint(1, 3)):
                version += 1
                text = f"Refunds are paid within {version} days (refund window)."
                rule = sample_rule(rule_id="refunds", version=version, text=text)
                await client.publish_rules([events.RuleUpsert(rule=rule)], wait=False)
            wanted = dict(client.published_watermark)
            (grounded,) = (await client.ground([question(wanted)], timeout_s=30)).values()
            assert covers(grounded.memory_watermark, wanted)
            assert [(r.rule_id, r.version) for r in grounded.rules] == [("refunds", version)]


async def test_a_watermark_never_reached_is_answered_with_an_error(
    ingest: IngestService, retrieval: RetrievalService, retrieval_settings: RetrievalSettings
) -> None:
    retrieval.settings.watermark_wait_s = 0.3
    ahead = {0: 10**12}
    async with AlignstreamClient(retrieval_settings.kafka) as client:
        (grounded,) = (await client.ground([question(ahead)], timeout_s=30)).values()
    # Retrieval waited its bound and passed on what it had: generation refuses to answer
    # from it (test_generation.py).
    assert not covers(grounded.memory_watermark, ahead)
    assert grounded.request.min_watermark == ahead
