"""Generation instances joining and leaving under steady load, with every generation and every
answer counted: what a scale-out test and ``bench.scale_out`` measure.

Each instance has a ``CountingBackend`` (a scripted engine: each answer takes ``generate_s``);
a generation *completes* when the backend returns (one aborted by a revocation does not). The
load publishes grounded requests at a steady rate; the answers are read raw from the response
topic, so an answer published twice is seen twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from shared import events
from shared.client import AlignstreamClient
from shared.kafka import ensure_topics
from shared.testing.backends import ScriptedBackend
from shared.topic_tail import TopicTail
from shared.topics import CHAT_GROUNDED, CHAT_RESPONSES


class CountingBackend(ScriptedBackend):
    """Answers after ``generate_s``; counts, per request, the generations that completed."""

    model = "counting"

    def __init__(self, completed: Counter[str], generate_s: float) -> None:
        self.completed = completed
        self.generate_s = generate_s
        self.started = 0

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        self.started += 1
        await asyncio.sleep(self.generate_s)
        question = request.messages[-1]["content"]
        self.completed[question.split("Question: ")[-1].split("\n")[0]] += 1
        return GenerationOutput(text="ok", finish_reason="stop", completion_tokens=1)


def grounded_request(question: str, tenant: str = "acme") -> events.GroundedRequest:
    chat = events.ChatRequest(
        tenant=tenant, messages=(events.ChatMessage(role=events.Role.USER, content=question),)
    )
    rule = events.RetrievedRule(rule_id="r1", version=1, score=0.9, text="A rule.")
    return events.GroundedRequest(request=chat, rules=(rule,), received_at=chat.created_at)


@dataclass
class FleetOutcome:
    sent: int
    answered: int
    lost_requests: int
    """Requests with no answer by the end."""
    duplicate_answers: int
    """Answers published beyond the first, over all requests."""
    duplicate_generations: int
    """Generations that completed beyond the first, over all requests."""
    generations_started: int


class GenerationFleet:
    """Instances ("pods") of one generation group, a steady load and the counts. With
    ``static_membership`` each pod joins under its own stable name, kept across its restarts
    (the chart's ``kafka.staticMembership``: the pod's name)."""

    def __init__(
        self,
        settings: GenerationSettings,
        *,
        generate_s: float = 0.5,
        static_membership: bool = False,
    ) -> None:
        self.settings = settings
        self.generate_s = generate_s
        self.static_membership = static_membership
        self.completed: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.instances: list[GenerationService] = []
        self.backends: list[CountingBackend] = []
        self._questions: dict[str, str] = {}  # request id -> question
        self._sent_at: dict[str, float] = {}
        self._answered_at: dict[str, float] = {}
        self._client: AlignstreamClient | None = None
        self._exits = contextlib.AsyncExitStack()
        self._reader: asyncio.Task[None] | None = None
        self._last_answer = 0.0

    async def __aenter__(self) -> GenerationFleet:
        await ensure_topics(self.settings.kafka)
        self._client = await self._exits.enter_async_context(AlignstreamClient(self.settings.kafka))
        topic = self.settings.kafka.topics(CHAT_RESPONSES)
        tail = await self._exits.enter_async_context(TopicTail(self.settings.kafka, topic))
        self._reader = asyncio.create_task(self._read_answers(tail))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(instance.stop() for instance in self.instances))
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._exits.aclose()

    def _pod(self, slot: int) -> GenerationService:
        backend = CountingBackend(self.completed, self.generate_s)
        self.backends.append(backend)
        settings = self.settings
        if self.static_membership:
            kafka = settings.kafka.model_copy(update={"group_instance": f"pod-{slot}"})
            settings = settings.model_copy(update={"kafka": kafka})
        return GenerationService(settings, backend=backend)

    async def scale_to(self, count: int) -> None:
        """Start pods (they join the group together) or stop the newest (each drains)."""
        joining = [self._pod(slot) for slot in range(len(self.instances), count)]
        await asyncio.gather(*(instance.start() for instance in joining))
        self.instances += joining
        leaving = self.instances[count:]
        self.instances = self.instances[:count]
        await asyncio.gather(*(instance.stop() for instance in leaving))

    async def restart(self, slot: int) -> None:
        """A pod restarted: it drains and stops, and comes back under the same name."""
        await self.instances[slot].stop()
        self.instances[slot] = self._pod(slot)
        await self.instances[slot].start()

    async def load(self, rate_per_s: float, seconds: float) -> None:
        """Publish requests at ``rate_per_s`` for ``seconds``."""
        assert self._client is not None
        interval = 1.0 / rate_per_s
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            item = grounded_request(f"q{len(self._questions)}")
            request_id = item.request.request_id
            self._questions[request_id] = item.request.messages[-1].content
            self._sent_at[request_id] = time.monotonic()
            await self._client.send(CHAT_GROUNDED, item)
            await asyncio.sleep(interval)
        await self._client.flush()

    async def _read_answers(self, tail: TopicTail) -> None:
        while True:
            for value in await tail.values(timeout_ms=200):
                response = events.ChatResponse.model_validate_json(value)
                if response.request_id in self._questions:
                    self.answers[response.request_id] += 1
                    self._last_answer = time.monotonic()
                    self._answered_at.setdefault(response.request_id, time.monotonic())

    def latencies_s(self) -> list[float]:
        """From sent to first answer, for every answered request."""
        return [at - self._sent_at[rid] for rid, at in self._answered_at.items()]

    async def settle(self, timeout_s: float = 60.0, quiet_s: float = 2.0) -> FleetOutcome:
        """Wait until every request has an answer and nothing more arrived for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            quiet = time.monotonic() - self._last_answer > quiet_s
            if len(self.answers) == len(self._questions) and quiet:
                break
            await asyncio.sleep(0.1)
        questions = set(self._questions.values())
        return FleetOutcome(
            sent=len(self._questions),
            answered=len(self.answers),
            lost_requests=len(self._questions) - len(self.answers),
            duplicate_answers=sum(n - 1 for n in self.answers.values()),
            duplicate_generations=sum(n - 1 for q, n in self.completed.items() if q in questions),
            generations_started=sum(b.started for b in self.backends),
        )
