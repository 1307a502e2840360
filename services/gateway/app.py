"""The gateway service: the OpenAI HTTP API (uvicorn + FastAPI, ``routes.py``) over the
pipeline's topics.

Requests go to ``chat.requests`` naming this instance's own reply topic ``replies.<instance>``,
which one subscriber (a consumer group of this instance alone) reads and hands to the open
requests (``ReplyWaiters``); several instances share the broker and never see each other's
replies. Shutdown drains: the listener closes, open requests finish (up to the request
timeout), then the broker stops and the instance's reply topic is deleted (one left by an
instance that died is deleted by the others: ``reply_janitor.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import uvicorn
from aiokafka.structs import RecordMetadata
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.types import ASGIApp

from services.gateway.auth import Authenticator
from services.gateway.capacity import OpenLimits, OpenRequests
from services.gateway.completions import Canceller, ChatCompletions
from services.gateway.confirmations import Confirmations
from services.gateway.http_limits import bounded_http
from services.gateway.metrics import FAMILIES, UNMATCHED
from services.gateway.ratelimit import RateLimiter
from services.gateway.replies import REPLY, ReplyWaiters
from services.gateway.reply_janitor import ReplyTopicJanitor
from services.gateway.routes import Gateway, build_app
from services.gateway.rule_admin import RuleAdminApi
from services.gateway.rules import ApplicableCheck, RulesApi
from services.gateway.settings import GatewaySettings
from services.gateway.translate import Defaults
from shared import events
from shared.embedders import Embedder, make_embedder
from shared.kafka import admin_client, ensure_topics
from shared.memory.history import RuleHistory
from shared.memory.keys import RuleKeys
from shared.memory.lifecycle import RuleLifecycle
from shared.memory.reader import RuleReader
from shared.memory.retriever import RuleRetriever
from shared.memory.schema import RuleSchema
from shared.memory.trees import JurisdictionStore
from shared.memory.watermark import Watermark
from shared.redis import make_redis
from shared.service import Service
from shared.signing import RecordSigner
from shared.subscription import Batch, Subscription
from shared.tenants import ApiKeys
from shared.topics import (
    CHAT_CANCELS,
    CHAT_REQUESTS,
    RULE_LOGS,
    RULES_EVENTS,
    RULES_LIVE,
    client_replies_spec,
)

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn inside the service's loop: the service owns the signals and the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayService(Service):
    name = "gateway"
    settings_class = GatewaySettings
    metrics = FAMILIES

    def __init__(self, settings: GatewaySettings, embedder: Embedder | None = None) -> None:
        super().__init__(settings)
        self.settings: GatewaySettings = settings
        self.replies_spec = client_replies_spec(settings.instance)
        self.reply_topic = self.topics(self.replies_spec)
        self.waiters = ReplyWaiters()
        # A 1 ms fetch: FastStream sleeps as long again after an empty poll, which a reply
        # arriving then would wait out (measured: 2 ms cost ~3 ms p50 at one client).
        # Read through the drain: the answers to the requests still open arrive here.
        replies = Subscription(self.replies_spec, REPLY, max_records=256, batch_timeout_ms=1,
                               group_id=f"{settings.group_id}.{settings.instance}",
                               pause_on_drain=False, chat_path=True)  # fmt: skip
        self.inbox = self.subscribe(replies, self.on_replies)
        self.publishes(CHAT_REQUESTS, why="chat completions, naming this instance's replies")
        self.publishes(CHAT_CANCELS, why="the requests of dropped streams and timed-out requests")
        self.publishes(RULES_EVENTS, why="the rules API's upserts and deletes (signed)")
        self.publishes(RULES_LIVE, why="the same edits on the fast lane, once the log has them")
        self.embedder = embedder or make_embedder(settings.retrieval.embedder)
        self._signer = RecordSigner.for_rules(settings.kafka)
        self.keys = ApiKeys.from_settings(settings.redis)
        self.confirmations = Confirmations(settings.kafka)
        limits = OpenLimits.derived(settings.max_in_flight, settings.max_in_flight_per_tenant,
                                    settings.max_in_flight_per_key)  # fmt: skip
        self.canceller = Canceller(self.send_cancel)
        self.chat = ChatCompletions(
            self.send_request,
            self.waiters,
            reply_topic=self.reply_topic,
            defaults=Defaults(settings.default_strategy, settings.default_max_tokens),
            open_requests=OpenRequests(limits),
            canceller=self.canceller,
            request_timeout_s=settings.request_timeout_s,
        )
        self._redis = make_redis(settings.redis)
        self.janitor = ReplyTopicJanitor(self._redis, RuleKeys(settings.redis.key_prefix),
                                         self.reply_topic, self._delete_topics,
                                         lease_s=settings.reply_lease_s,
                                         sweep_every_s=settings.reply_sweep_every_s)  # fmt: skip
        self.server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The API's port (known once started; ``port=0`` picks a free one)."""
        assert self.server is not None, "gateway not started"
        assert self.server.servers, "gateway not listening yet"
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}/v1"

    async def on_start(self) -> None:
        await self.janitor.register()  # before the topic exists: no sweep takes it for dead
        await ensure_topics(self.settings.kafka, [self.replies_spec])
        await self.keys.open()
        await self.embedder.start()
        prefix = self.settings.redis.key_prefix
        schema = RuleSchema(prefix, self.embedder.dim, self.embedder.name)
        retrieval = self.settings.retrieval
        retriever = RuleRetriever(retrieval.searcher(self._redis, schema),
                                  JurisdictionStore(self._redis, prefix),
                                  retrieval.retrieval_options())  # fmt: skip
        reader = RuleReader(self._redis, schema)
        rules = RulesApi(self.publish_rule, self.confirmations, reader,
                         wait_timeout_s=self.settings.rules_wait_timeout_s)  # fmt: skip
        lifecycle = RuleLifecycle(reader, RuleHistory(self._redis, prefix))
        check = ApplicableCheck(self.embedder, retriever, min_score=self.settings.check_min_score)
        auth = Authenticator(self.keys, RateLimiter(self._redis, prefix),
                             cache_s=self.settings.key_cache_s,
                             default_rate_per_s=self.settings.default_rate_limit_per_s)  # fmt: skip
        gateway = Gateway(
            auth=auth,
            chat=self.chat,
            rules=rules,
            rule_admin=RuleAdminApi(rules, lifecycle),
            check=check,
            default_strategy=self.settings.default_strategy,
            started=int(time.time()),
            ping_s=self.settings.sse_ping_s,
            live=self.is_live,
            ready=self.is_ready,
        )
        app: ASGIApp = build_app(gateway, max_body_bytes=self.settings.max_body_bytes)
        if self.tracing.enabled:  # each HTTP request starts (or continues) the trace
            app = OpenTelemetryMiddleware(app, tracer_provider=self.tracing.provider)
        http = bounded_http(self.settings.max_header_bytes, self.settings.max_headers)
        config = uvicorn.Config(app, host=self.settings.host, port=self.settings.port, http=http,
                                log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=int(self.settings.request_timeout_s) + 1,
                                timeout_keep_alive=30)  # fmt: skip
        self.server = _Server(config)

    async def on_running(self) -> None:
        assert self.server is not None
        self._serving = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._serving.done():  # e.g. the port is taken
                await self._serving
                raise RuntimeError(f"the gateway could not listen on port {self.settings.port}")
            await asyncio.sleep(0.01)
        log.info("gateway listening", extra={"url": self.base_url, "replies": self.reply_topic})
        self.janitor.start()

    async def on_draining(self) -> None:
        # Stop accepting; requests still open are answered (the subscriber still runs).
        if self.server is not None and self._serving is not None:
            self.server.should_exit = True
            await self._serving
        await self.canceller.drain()  # while the producer still runs

    async def on_stop(self) -> None:
        await self.confirmations.stop()
        await self.embedder.close()
        await self.janitor.stop()
        await self.keys.close()
        try:  # instances come and go: their reply topics should not pile up
            await self._delete_topics([self.reply_topic])
            await self.janitor.release()
        except Exception:  # left to the other instances' sweep; never fatal to a shutdown
            log.warning("could not delete the reply topic", exc_info=True,
                        extra={"topic": self.reply_topic})  # fmt: skip
        await self._redis.aclose()

    async def is_ready(self) -> bool:
        return await super().is_ready() and self.server is not None and self.server.started

    async def is_live(self) -> bool:
        # uvicorn's task ended outside a shutdown: nothing listens on the API port any more.
        return self._serving is None or self.stopping or not self._serving.done()

    async def send_request(self, request: events.ChatRequest) -> None:
        """Publish a request, carrying the HTTP request's trace on."""
        await self.publish_bodies(self.topics(CHAT_REQUESTS),
                                  [(request.key, self.encode_bounded(request))],
                                  headers=[self.tracing.headers()])  # fmt: skip

    async def send_cancel(self, cancel: events.ChatCancel) -> None:
        await self.publish_all(self.topics(CHAT_CANCELS), [cancel])

    async def publish_rule(self, event: events.RuleEvent) -> Watermark:
        """The log first, then the fast lane: each publish is awaited (acknowledged), so the
        fast lane never carries an edit the log does not have. Returns where the event landed
        in the log (the watermark that holds it)."""
        body, key = self.encode_bounded(event), event.key.encode()
        landed: Watermark = {}
        for spec in RULE_LOGS:
            topic = self.topics(spec)
            signed = self._signer.headers(topic, key, body)
            headers = {name: value.decode() for name, value in signed}
            headers.update(self.tracing.headers())
            sent = await self.broker.publish(body, topic, key=key, headers=headers or None)
            if spec is RULES_EVENTS and isinstance(sent, RecordMetadata):
                landed = {sent.partition: sent.offset + 1}
        return landed

    async def on_replies(self, batch: Batch[events.ChatResponse]) -> None:
        for reply in batch.events:
            if not self.waiters.dispatch(reply):
                UNMATCHED.inc()

    async def _delete_topics(self, topics: list[str]) -> None:
        admin = admin_client(self.settings.kafka)
        try:
            await admin.start()
            await admin.delete_topics(topics)
        finally:
            await admin.close()
