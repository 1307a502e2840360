"""The generation service on the real broker, with a scripted backend.

The backend here is a test double (the engine itself is covered by test_vllm_cpu.py): it lets
these tests control timing and failures precisely.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.generation.app import GenerationService
from services.generation.backends.base import BackendError, GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.ingest.app import AUDIT_RECORD
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.testing.backends import ScriptedBackend
from shared.testing.topics import TopicReader
from shared.topic_tail import TopicTail
from shared.topics import AUDIT_ENTRIES, CHAT_GROUNDED, CHAT_RESPONSES, EXAM_ANSWERS


class TimedBackend(ScriptedBackend):
    """Answers by the question text: ``fail`` raises, ``slow N`` sleeps N seconds."""

    model = "script-1"

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0
        self.seen: list[GenerationInput] = []
        self.started = asyncio.Event()

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        self.seen.append(request)
        self.started.set()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            question = request.messages[-1]["content"]
            if "fail" in question:
                raise BackendError("scripted failure")
            if "stream" in question and request.on_text is not None:
                words = [f"word{i} " for i in range(8)]
                for word in words:  # 8 pieces over ~0.4 s
                    request.on_text(word)
                    await asyncio.sleep(0.05)
                return GenerationOutput(text="".join(words), finish_reason="stop",
                                        completion_tokens=8)  # fmt: skip
            if "slow" in question:
                await asyncio.sleep(float(question.split("slow ")[1].split()[0]))
            else:
                await asyncio.sleep(0.2)
            return GenerationOutput(text=f"echo: {question}", finish_reason="stop",
                                    prompt_tokens=3, completion_tokens=2, ttft_ms=1.0)  # fmt: skip
        finally:
            self.running -= 1


@pytest.fixture
async def generation(
    service_settings: dict[str, Any], prefix: str
) -> AsyncIterator[tuple[GenerationService, TimedBackend]]:
    backend = TimedBackend()
    settings = GenerationSettings(
        **service_settings, group_id=f"{prefix}.generation", request_timeout_s=1.5, max_in_flight=16
    )
    async with GenerationService(settings, backend=backend) as service:
        yield service, backend


def grounded(question: str, **request: Any) -> events.GroundedRequest:
    chat = events.ChatRequest(
        tenant="acme",
        messages=(events.ChatMessage(role=events.Role.USER, content=question),),
        **request,
    )
    rule = events.RetrievedRule(rule_id="r1", version=3, score=0.9, text="A rule.")
    return events.GroundedRequest(request=chat, rules=(rule,), received_at=chat.created_at)


async def run(
    client: AlignstreamClient, items: list[events.GroundedRequest], timeout_s: float = 30
) -> list[events.ChatResponse]:
    """Publish grounded requests and collect responses in arrival order."""
    async with TopicTail(client.settings, client.topics(CHAT_RESPONSES)) as tail:
        for item in items:
            await client.send(CHAT_GROUNDED, item)
        await client.flush()
        responses = await tail.collect(
            events.ChatResponse.model_validate_json,
            lambda r: r.request_id,
            (item.request.request_id for item in items),
            timeout_s=timeout_s,
        )
    return list(responses.values())


async def test_answers_cite_rules_and_errors_and_timeouts_become_responses(
    generation: tuple[GenerationService, TimedBackend], reader: TopicReader
) -> None:
    service, _ = generation
    ok, fail, slow = grounded("hello"), grounded("please fail"), grounded("slow 5 please")
    async with AlignstreamClient(service.settings.kafka) as client:
        responses = {r.request_id: r for r in await run(client, [ok, fail, slow])}

    answer = responses[ok.request.request_id]
    assert answer.ok
    assert answer.text.startswith("echo: Supplementary information (reference rules")
    assert '<rule id="r1" version="3">A rule.</rule>' in answer.text  # fenced by default
    assert answer.grounded_in == (events.RuleRef(rule_id="r1", version=3),)
    # The echo restates the rule: attributed to it, by support.
    assert [(c.rule_id, c.version, c.method) for c in answer.cited] == [("r1", 3, "support")]
    assert (answer.backend, answer.model) == ("scripted", "script-1")
    assert answer.usage.completion_tokens == 2
    assert answer.timings.total_ms > 0

    failed = responses[fail.request.request_id]
    assert not failed.ok
    assert failed.error is not None
    assert failed.error.kind is events.ErrorKind.BACKEND

    timed_out = responses[slow.request.request_id]
    assert timed_out.error is not None
    assert timed_out.error.kind is events.ErrorKind.TIMEOUT

    # Each answered request has its audit entry: the rules given and cited, the outcome, and
    # the question only as its hash (the default).
    audited = {e.request_id: e for e in await audit_entries(reader, 3)}
    entry = audited[ok.request.request_id]
    assert (entry.tenant, entry.outcome, entry.question) == ("acme", "ok", "")
    assert entry.question_sha256 == hashlib.sha256(b"hello").hexdigest()
    assert [(c.rule_id, c.version) for c in entry.cited] == [("r1", 3)]
    assert audited[fail.request.request_id].outcome == "backend"
    assert audited[slow.request.request_id].outcome == "timeout"


async def audit_entries(reader: TopicReader, wanted: int) -> list[events.AuditEntry]:
    """The first ``wanted`` audit entries, however they were batched into records."""
    for records in range(1, wanted + 1):
        items = [AUDIT_RECORD.validate_json(r.value)
                 for r in await reader.read(AUDIT_ENTRIES, count=records)]  # fmt: skip
        found = [entry for item in items for entry in events.entries_of(item)]
        if len(found) >= wanted:
            return found
    raise AssertionError(f"fewer than {wanted} audit entries")


async def test_a_memory_behind_the_requested_watermark_is_never_answered_from(
    generation: tuple[GenerationService, TimedBackend],
) -> None:
    service, _ = generation
    behind = grounded("hello", min_watermark={0: 9})
    behind = behind.model_copy(update={"memory_watermark": {0: 8}})
    held = grounded("hello", min_watermark={0: 9}).model_copy(
        update={"memory_watermark": {0: 9, 1: 4}}
    )
    base = grounded("hello", min_watermark={0: 9}, strategy=events.Strategy.BASE)
    async with AlignstreamClient(service.settings.kafka) as client:
        got = {r.request_id: r for r in await run(client, [behind, held, base])}
    refused = got[behind.request.request_id]
    assert refused.error is not None
    assert refused.error.kind is events.ErrorKind.TIMEOUT
    assert "min_watermark" in refused.error.message
    assert refused.memory_watermark == {0: 8}
    assert got[held.request.request_id].ok
    assert got[held.request.request_id].memory_watermark == {0: 9, 1: 4}
    assert got[base.request.request_id].ok  # no search: no memory to wait for


async def test_requests_overlap_and_a_slow_one_does_not_hold_back_the_rest(
    generation: tuple[GenerationService, TimedBackend],
) -> None:
    service, backend = generation
    slow = grounded("slow 1.2 first")
    fast = [grounded(f"fast {i}") for i in range(12)]
    async with AlignstreamClient(service.settings.kafka) as client:
        arrived = await run(client, [slow, *fast])

    assert backend.max_running >= 8  # 13 requests of 0.2-1.2 s ran concurrently
    order = [r.request_id for r in arrived]
    assert order[-1] == slow.request.request_id  # published first, answered last
    assert all(r.ok for r in arrived)


async def test_reply_topic_and_metadata_are_honoured(
    generation: tuple[GenerationService, TimedBackend], reader: TopicReader
) -> None:
    service, _ = generation
    item = grounded("hello", reply_topic=reader.name(EXAM_ANSWERS), metadata={"job": "j1"})
    async with AlignstreamClient(service.settings.kafka) as client:
        await client.send(CHAT_GROUNDED, item)
        await client.flush()
    (record,) = await reader.read(EXAM_ANSWERS, count=1)
    response = events.ChatResponse.model_validate_json(record.value)
    assert response.request_id == item.request.request_id
    assert response.metadata == {"job": "j1"}


async def test_streaming_request_shows_text_in_pieces_then_the_response(
    retrieval: RetrievalService, generation: tuple[GenerationService, TimedBackend]
) -> None:
    service, _ = generation
    request = grounded("please stream").request
    pieces: list[tuple[float, str]] = []
    async with AlignstreamClient(service.settings.kafka) as client:
        response = await client.ask_streaming(
            request, lambda text: pieces.append((time.monotonic(), text)), timeout_s=20
        )
    arrived = time.monotonic()
    assert response.ok
    assert "".join(text for _, text in pieces) == response.text
    assert response.text == "".join(f"word{i} " for i in range(8))
    # Coalesced (fewer messages than the 8 pieces) but streamed: the first piece came well
    # before the end of the ~0.4 s generation.
    assert 2 <= len(pieces) <= 9
    assert arrived - pieces[0][0] > 0.1


async def send_all(client: AlignstreamClient, items: list[events.GroundedRequest]) -> None:
    for item in items:
        await client.send(CHAT_GROUNDED, item)
    await client.flush()


async def collect(tail: TopicTail, items: list[events.GroundedRequest]) -> dict[str, Any]:
    return await tail.collect(
        events.ChatResponse.model_validate_json,
        lambda r: r.request_id,
        [item.request.request_id for item in items],
        timeout_s=30,
    )


def drain_settings(service_settings: dict[str, Any], prefix: str) -> GenerationSettings:
    return GenerationSettings(
        **service_settings, group_id=f"{prefix}.generation", request_timeout_s=20, max_in_flight=16
    )


@contextlib.asynccontextmanager
async def draining(
    settings: GenerationSettings, held: events.GroundedRequest
) -> AsyncIterator[tuple[AlignstreamClient, TopicTail, TimedBackend, asyncio.Task[None]]]:
    """A generation instance that holds ``held`` in flight when its drain (SIGTERM) begins;
    the client and the responses' tail, the instance's backend and its stopping task."""
    leaving = TimedBackend()
    async with (
        AlignstreamClient(settings.kafka) as client,
        TopicTail(client.settings, client.topics(CHAT_RESPONSES)) as tail,
    ):
        first = GenerationService(settings, backend=leaving)
        await first.start()
        await send_all(client, [held])
        await asyncio.wait_for(leaving.started.wait(), timeout=20)
        stopping = asyncio.create_task(first.stop())
        await asyncio.sleep(0.2)
        yield client, tail, leaving, stopping
        await stopping


async def test_a_draining_instance_finishes_its_work_and_leaves_new_requests_to_the_next(
    service_settings: dict[str, Any], prefix: str
) -> None:
    settings = drain_settings(service_settings, prefix)
    held = grounded("slow 2 held while draining")
    late = [grounded(f"late {i}") for i in range(6)]
    joining = TimedBackend()
    async with draining(settings, held) as (client, tail, leaving, stopping):
        await send_all(client, late)
        await stopping
        # The request in flight was finished; nothing published after the drain began was taken.
        (only,) = leaving.seen
        question = only.messages[-1]["content"]
        assert question.endswith("Question: slow 2 held while draining\nAnswer:")
        async with GenerationService(settings, backend=joining):
            responses = await collect(tail, [held, *late])
    assert all(r.ok for r in responses.values())
    assert len(joining.seen) == len(late)  # answered once each, by the next instance


async def test_a_draining_instance_takes_nothing_from_the_partitions_a_rebalance_gives_it(
    service_settings: dict[str, Any], prefix: str
) -> None:
    """A rolling update: the new pod joins while the old one drains. The group's rebalance
    hands the old one partitions again; they stay paused, the new pod answers everything."""
    settings = drain_settings(service_settings, prefix)
    late = [grounded(f"late {i}") for i in range(12)]
    joining = TimedBackend()
    held = grounded("slow 8 held while draining")
    async with (
        draining(settings, held) as (client, tail, leaving, _),
        GenerationService(settings, backend=joining),  # the new pod joins
    ):
        await asyncio.sleep(3)  # the group rebalances over both members
        await send_all(client, late)
        responses = await collect(tail, late)
    assert all(r.ok for r in responses.values())
    assert len(leaving.seen) == 1  # only the request it held when the drain began
    assert {s.messages[-1]["content"].split("Question: ")[1] for s in joining.seen} >= {
        f"late {i}\nAnswer:" for i in range(12)
    }
