"""Publishing responses: retried through a broker outage, replaced when too large, and the
request dead-lettered when its reply topic can never take it (known missing before any
generation: ``ReplyTopics``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka.errors import UnknownTopicOrPartitionError

from services.generation.audit import AuditQuestions, audit_entry
from services.generation.audit_batches import AuditBatches
from services.generation.reply_topics import ReplyTopics
from services.generation.serving import Answering
from shared import events
from shared.dlq import DeadLetterFailed, Inbox, PoisonMessage, Record, backoff_after
from shared.kafka import OversizedMessage, is_final_publish_error
from shared.metrics import UNPUBLISHABLE
from shared.service import Publisher
from shared.topics import AUDIT_ENTRIES, CHAT_RESPONSES, CHAT_TOKENS, EXAM_ANSWERS

log = logging.getLogger(__name__)


class ResponseDelivery:
    def __init__(
        self,
        out: Publisher,
        inbox: Inbox[events.GroundedRequest],
        backoff_s: float,
        stopping: Callable[[], bool],
        reply_topics: ReplyTopics,
        audit: AuditQuestions | None = "hash",
    ) -> None:
        self.out = out
        self.inbox = inbox
        self.backoff_s = backoff_s
        self.stopping = stopping
        self.reply_topics = reply_topics
        self.audit = audit
        """None: no audit entries; else what they keep of the question."""
        self._own_reply_topics = {out.topics(CHAT_RESPONSES), out.topics(EXAM_ANSWERS)}
        self.audit_batches = AuditBatches(out, out.topics(AUDIT_ENTRIES), backoff_s=backoff_s,
                                          stopping=stopping)  # fmt: skip

    async def deliver(
        self,
        answering: Answering,
        record: Record,
        response: events.ChatResponse,
        *,
        headers: dict[str, str] | None = None,
    ) -> bool:
        """Publish a response, retrying through a broker outage (an unpublished response would
        hold back every later commit of its partition). A response over the size limit is
        replaced by an error response; one that can never be published (forbidden, missing or
        invalid topic) dead-letters its request. True when the request is done with; False when
        the service stops first (the offset stays uncommitted and the request is redelivered)."""
        topic = answering.request.reply_topic or self.out.topics(CHAT_RESPONSES)
        try:
            body = self.out.encode_bounded(response)
        except OversizedMessage as exc:
            UNPUBLISHABLE.labels(self.out.name, "response").inc()
            response = answering.error(events.ErrorKind.INVALID_REQUEST,
                                       f"the answer is {exc.size} bytes, over the {exc.limit}-byte "
                                       "message limit; lower max_tokens")  # fmt: skip
            try:
                body = self.out.encode_bounded(response)
            except OversizedMessage as again:  # the echoed metadata alone is too large
                return await self._unpublishable(record, topic, again)
        # The answer at once; its audit entry in its tenant's next batch. Done once both are
        # out (or the request dead-lettered: None).
        publishing = self._publish_retrying(record, topic, response.key, body, headers or {},
                                            response.request_id)  # fmt: skip
        if self.audit is None:
            return await publishing is not False
        entry = audit_entry(answering.request, response, self.audit)
        audited = self.audit_batches.add(entry)
        try:
            sent = await publishing
        except BaseException:
            audited.add_done_callback(_observed)  # nobody waits for it now: no stray warning
            raise
        return sent is not False and await audited

    async def _publish_retrying(
        self, record: Record, topic: str, key: str, body: bytes, headers: dict[str, str],
        request_id: str,
    ) -> bool | None:  # fmt: skip
        """True once published; None when the request was dead-lettered instead (done with);
        False when the service stops first."""
        ours = topic in self._own_reply_topics
        failures = 0
        while True:
            try:
                await self.out.publish_bodies(topic, [(key, body)], headers=[headers])
                return True
            except Exception as exc:
                if is_final_publish_error(exc, topic_is_ours=ours):
                    return None if await self._unpublishable(record, topic, exc) else False
                failures += 1
                log.warning("could not publish a response; retrying", exc_info=True,
                            extra={"request_id": request_id})  # fmt: skip
            if self.stopping():
                return False
            await asyncio.sleep(backoff_after(failures, self.backoff_s))

    async def refuse_missing_reply_topic(
        self, request: events.ChatRequest, record: Record
    ) -> bool | None:
        """None when the request's reply topic exists (or is the service's own); otherwise the
        request is dead-lettered now, before it takes a slot: True, or False when the service
        stops first."""
        topic = request.reply_topic
        if topic is None or topic in self._own_reply_topics:
            return None
        if await self.reply_topics.exists(topic):
            return None
        return await self._unpublishable(record, topic, UnknownTopicOrPartitionError(topic))

    async def publish_token(self, request: events.ChatRequest, token: events.ChatToken) -> None:
        """Pieces are a preview: a piece that cannot be published is counted and skipped, the
        response (retried until published) is what completes the answer. A client with a reply
        topic of its own gets the pieces there, ahead of the response (same key, same
        partition); others read the shared ``chat.tokens``."""
        own = request.reply_topic
        topic = own if own and self.out.topics.is_client_replies(own) else None
        try:
            await self.out.publish_all(topic or self.out.topics(CHAT_TOKENS), [token])
        except Exception:
            UNPUBLISHABLE.labels(self.out.name, "token").inc()
            log.warning("could not publish a token piece", exc_info=True,
                        extra={"request_id": token.request_id})  # fmt: skip

    async def _unpublishable(self, record: Record, topic: str, exc: BaseException) -> bool:
        """Dead-letter the request whose response can never be published to ``topic``
        (retrying the dead letter with back-off); False when the service stops first."""
        UNPUBLISHABLE.labels(self.out.name, "reply").inc()
        detail = f"response to {topic[:300]!r} cannot be published: {exc!r}"[:2000]
        while True:
            try:
                await self.inbox.reject(record, PoisonMessage("unpublishable_reply", detail))
                return True
            except DeadLetterFailed:
                if self.stopping():
                    return False


def _observed(future: asyncio.Future[bool]) -> None:
    if not future.cancelled():
        future.exception()
