"""A client for people and programs: publish rule events, ask questions and run jobs over
Kafka.

Replies come back on topics (``topic_tail.py``): the client listens on the reply topic from the
end offsets taken before it publishes, so nothing is missed, and matches replies by tenant and
request id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Self, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata

from shared import events
from shared.errors import NotConfirmed
from shared.kafka import client_security_kwargs, ensure_topics
from shared.memory.watermark import Watermark, merged
from shared.settings import KafkaSettings
from shared.signing import PipelineSignatures, RecordSigner
from shared.topic_tail import (
    RepliesMissing,
    TopicTail,
    collect_replies,
    parsed_event,
    which_stage_stalled,
)
from shared.topics import (
    CHAT_GROUNDED,
    CHAT_REQUESTS,
    CHAT_RESPONSES,
    CHAT_TOKENS,
    EXAM_JOBS,
    EXAM_RESULTS,
    RESEARCH_JOBS,
    RESEARCH_PROGRESS,
    RULE_LOGS,
    RULES_EVENTS,
    RULES_INDEXED,
    RULES_LIVE,
    TopicSpec,
)

P = TypeVar("P", events.ExamResult, events.ResearchProgress)


LIVE_LANE_MAX_EVENTS = 16
"""A publish of at most this many rule events is an edit, not a load: its events also take the
fast lane (``rules.live``), so they are not queued behind a bulk load in ``rules.events``."""


class AlignstreamClient:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        connect_timeout_s: float = 5.0,
        live_lane_max_events: int = LIVE_LANE_MAX_EVENTS,
    ) -> None:
        self.settings = settings
        self.connect_timeout_s = connect_timeout_s
        self.live_lane_max_events = live_lane_max_events
        self.topics = settings.topics
        self._signer = RecordSigner.for_rules(settings)
        self._signatures = PipelineSignatures(settings)
        self.published_watermark: Watermark = {}
        """How far the rule log reaches with every rule event this client published (pass it
        as a request's ``min_watermark`` to read its own writes)."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            # No linger: a question or an edit is sent at once (a linger is added to every
            # request's latency); a bulk load still batches what piles up while a send is out.
            linger_ms=0,
            acks="all",
            **client_security_kwargs(settings),
        )

    async def __aenter__(self) -> Self:
        # Missing topics are created from their specification before anything is sent: a
        # broker that auto-creates them would give rules.events its defaults (not compacted).
        await ensure_topics(self.settings, timeout_s=self.connect_timeout_s)
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, spec: TopicSpec, event: events.Event) -> asyncio.Future[RecordMetadata]:
        """Publish one event to ``spec``'s topic under the event's own key (signed: rule events
        with the rule key, the pipeline's messages with the pipeline key, when set);
        the delivery, to await where an acknowledgement matters."""
        value, raw_key, topic = events.encode(event), events.key_bytes(event.key), self.topics(spec)
        partition = await self._partition(topic, event)
        if spec in RULE_LOGS:
            headers = self._signer.headers(topic, raw_key or b"", value)
        else:
            signed = self._signatures.sign(topic, raw_key, value, {})
            headers = [(name, text.encode()) for name, text in signed.items()]
        delivery: asyncio.Future[RecordMetadata] = await self._producer.send(
            topic, value, key=raw_key, headers=headers, partition=partition
        )
        return delivery

    async def _partition(self, topic: str, event: events.Event) -> int | None:
        """A change set's events share one partition (by the set's key, as the producer would
        place a record under it), so a replay meets its stages before its promote; None:
        the record's own key places it."""
        if not isinstance(event, events.ChangeSetEvent):
            return None
        partitions = sorted(await self._producer.partitions_for(topic))
        chosen: int = DefaultPartitioner()(events.key_bytes(event.partition_key), partitions, [])
        return chosen

    async def flush(self) -> None:
        await self._producer.flush()

    async def publish_rules(
        self,
        rule_events: Sequence[events.RulesTopicEvent],
        *,
        wait: bool = False,
        timeout_s: float = 60.0,
        on_sent: Callable[[int], None] | None = None,
        on_confirmed: Callable[[events.RuleIndexed], None] | None = None,
    ) -> list[events.RuleIndexed]:
        """Publish rule events in order; with ``wait``, return their confirmations (in the order
        they arrived) once every event is servable. Raises TimeoutError listing what is missing.
        Up to ``live_lane_max_events`` events also take the fast lane, once the log has them."""
        if not wait:
            await self._send_rules(rule_events, on_sent)
            return []
        async with TopicTail(self.settings, self.topics(RULES_INDEXED)) as tail:
            await self._send_rules(rule_events, on_sent)
            try:
                confirmed = await tail.collect(
                    events.RuleIndexed.model_validate_json,
                    lambda c: c.source_event_id,
                    (event.event_id for event in rule_events),
                    timeout_s=timeout_s,
                    on_item=on_confirmed,
                )
            except RepliesMissing as exc:
                message = (f"published {len(rule_events)} events; {exc.missing} not confirmed "
                           f"servable after {exc.timeout_s:g} s")  # fmt: skip
                raise NotConfirmed(message) from exc
        return list(confirmed.values())

    async def _send_rules(
        self, rule_events: Sequence[events.RulesTopicEvent], on_sent: Callable[[int], None] | None
    ) -> None:
        deliveries = []
        for event in rule_events:
            deliveries.append(await self.send(RULES_EVENTS, event))
            if on_sent is not None:
                on_sent(1)
        await self.flush()
        # Only once the log acknowledged every one (acks=all; a failed send raises here): Redis
        # never holds an edit that a replay of the log would not bring back.
        sent = await asyncio.gather(*deliveries)
        self.published_watermark = merged(
            self.published_watermark, *({m.partition: m.offset + 1} for m in sent)
        )
        if 0 < len(rule_events) <= self.live_lane_max_events:
            for event in rule_events:
                await self.send(RULES_LIVE, event)
            await self.flush()

    async def ground(
        self, requests: Iterable[events.ChatRequest], *, timeout_s: float = 30.0
    ) -> dict[str, events.GroundedRequest]:
        """Send requests and collect what retrieval grounded them with (by request id)."""
        async with TopicTail(self.settings, self.topics(CHAT_GROUNDED)) as tail:
            ids = await self._send_requests(requests)
            return await tail.collect(
                events.GroundedRequest.model_validate_json,
                lambda g: g.request.request_id,
                ids,
                timeout_s=timeout_s,
            )

    async def ask(
        self,
        requests: Iterable[events.ChatRequest],
        *,
        timeout_s: float = 120.0,
        on_response: Callable[[events.ChatResponse], None] | None = None,
    ) -> dict[str, events.ChatResponse]:
        """Send chat requests and wait for one response each (by request id; a duplicate from a
        redelivery is ignored). The requests' reply topic must be the default responses topic."""
        requests = list(requests)
        async with (
            TopicTail(self.settings, self.topics(CHAT_GROUNDED)) as grounded,
            TopicTail(self.settings, self.topics(CHAT_RESPONSES), chat_path=True) as tail,
        ):
            await self._send_requests(requests)
            try:
                wanted = [(r.tenant, r.request_id) for r in requests]
                return await collect_replies(tail, wanted, timeout_s=timeout_s,
                                             on_response=on_response)  # fmt: skip
            except TimeoutError as exc:
                raise await which_stage_stalled(grounded, requests, str(exc)) from exc

    async def ask_streaming(
        self,
        request: events.ChatRequest,
        on_text: Callable[[str], None],
        *,
        timeout_s: float = 120.0,
    ) -> events.ChatResponse:
        """Send one request with ``stream`` set; pass its text to ``on_text`` as it is generated,
        in order, then return the response."""
        request = request.model_copy(update={"stream": True})
        pieces: dict[int, events.ChatToken] = {}
        shown = 0
        response: events.ChatResponse | None = None
        async with (
            TopicTail(self.settings, self.topics(CHAT_GROUNDED)) as grounded,
            TopicTail(self.settings, self.topics(CHAT_TOKENS), chat_path=True) as tokens,
            TopicTail(self.settings, self.topics(CHAT_RESPONSES), chat_path=True) as responses,
        ):
            await self._send_requests([request])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for value in await tokens.values(timeout_ms=20):
                    token = parsed_event(events.ChatToken, value)
                    if token is not None and (token.tenant, token.request_id) == (
                        request.tenant,
                        request.request_id,
                    ):
                        pieces.setdefault(token.seq, token)
                while shown in pieces:  # in seq order, each piece once
                    on_text(pieces[shown].text)
                    shown += 1
                for value in await responses.values(timeout_ms=0):
                    candidate = parsed_event(events.ChatResponse, value)
                    if candidate is not None and (candidate.tenant, candidate.request_id) == (
                        request.tenant,
                        request.request_id,
                    ):
                        response = candidate
                ended = shown > 0 and pieces[shown - 1].final
                if response is not None and (ended or not response.ok):
                    return response
            message = f"no complete answer to {request.request_id} after {timeout_s}s"
            raise await which_stage_stalled(grounded, [request], message)

    async def run_exam(
        self,
        job: events.ExamJob,
        *,
        timeout_s: float = 3600.0,
        on_progress: Callable[[events.ExamResult], None] | None = None,
    ) -> events.ExamResult:
        """Submit an exam job and follow its progress events until the final result."""
        return await self._run_job(EXAM_JOBS, job, EXAM_RESULTS, events.ExamResult,
                                   timeout_s=timeout_s, on_progress=on_progress)  # fmt: skip

    async def run_research(
        self,
        job: events.ResearchJob,
        *,
        timeout_s: float = 24 * 3600.0,
        on_progress: Callable[[events.ResearchProgress], None] | None = None,
    ) -> events.ResearchProgress:
        """Submit a research job and follow its progress events until the final one."""
        return await self._run_job(RESEARCH_JOBS, job, RESEARCH_PROGRESS, events.ResearchProgress,
                                   timeout_s=timeout_s, on_progress=on_progress)  # fmt: skip

    async def _run_job(
        self,
        jobs: TopicSpec,
        job: events.ExamJob | events.ResearchJob,
        progress: TopicSpec,
        model: type[P],
        *,
        timeout_s: float,
        on_progress: Callable[[P], None] | None,
    ) -> P:
        """Publish a job and read its tenant's progress events for it until a final one."""
        async with TopicTail(self.settings, self.topics(progress)) as tail:
            await self.send(jobs, job)
            await self.flush()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for value in await tail.values():
                    event = parsed_event(model, value)
                    if event is None or (event.tenant, event.job_id) != (job.tenant, job.job_id):
                        continue
                    if on_progress is not None:
                        on_progress(event)
                    if event.final:
                        return event
        raise TimeoutError(f"job {job.job_id} not finished after {timeout_s}s")

    async def _send_requests(self, requests: Iterable[events.ChatRequest]) -> list[str]:
        """Send chat requests; return their ids."""
        ids = []
        for request in requests:
            ids.append(request.request_id)
            await self.send(CHAT_REQUESTS, request)
        await self.flush()
        return ids
