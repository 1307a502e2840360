"""The HTTP surface: thin FastAPI routes over the gateway's cores (``Gateway``).

Every error is OpenAI's error body (the ``openai`` client raises its typed exceptions on it),
including validation errors (400, not FastAPI's 422), unknown routes and oversized bodies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.auth import Authenticator
from services.gateway.authenticated import Authenticated
from services.gateway.caller import ERRORS, Caller
from services.gateway.completions import ChatCompletions, StreamItem
from services.gateway.errors import ApiError, error_response, invalid
from services.gateway.health import Check, health_router
from services.gateway.metrics import REQUESTS, SECONDS
from services.gateway.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelList,
)
from services.gateway.rule_admin import RuleAdminApi
from services.gateway.rule_routes import rules_router
from services.gateway.rules import ApplicableCheck, RulesApi
from services.gateway.translate import model_cards
from shared.events import Strategy


@dataclass(frozen=True, slots=True)
class Gateway:
    """What the routes call."""

    auth: Authenticator
    chat: ChatCompletions
    rules: RulesApi
    rule_admin: RuleAdminApi
    check: ApplicableCheck | None
    default_strategy: Strategy
    started: int
    ping_s: float
    live: Check
    ready: Check


class BodyLimit:
    """Refuses a body over ``max_bytes`` (413) before the app reads it whole: by its
    Content-Length, or as it arrives when it has none (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ApiError(413, f"The body is over {self.max_bytes} bytes.",
                             code="request_too_large")  # fmt: skip
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await error_response(too_large)(scope, receive, send)
                return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large
            return message

        try:
            await self.app(scope, bounded, send)
        except ApiError as error:
            await error_response(error)(scope, receive, send)


class Measured:
    """Counts and times every request by route and status (a plain ASGI middleware: the
    ``BaseHTTPMiddleware`` kind costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(route, str(status)).inc()
            SECONDS.labels(route).observe(time.perf_counter() - started)


def _sse(item: StreamItem) -> ServerSentEvent:
    body = item.body if isinstance(item, ApiError) else item
    return ServerSentEvent(data=body.model_dump_json(exclude_none=True))


async def _events(first: StreamItem, rest: AsyncGenerator[StreamItem]) -> AsyncIterator[Any]:
    try:
        yield _sse(first)
        async for item in rest:
            yield _sse(item)
        yield ServerSentEvent(data="[DONE]")
    finally:
        await rest.aclose()  # the client left: release the request's slot now


def build_app(gateway: Gateway, *, max_body_bytes: int) -> FastAPI:
    description = ("OpenAI-compatible chat completions grounded in the tenant's rules, the "
                   "rules API and the check endpoint.")  # fmt: skip
    app = FastAPIOffline(title="alignstream gateway", version="1", description=description)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(invalid(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if error.status_code == 404 else None
        return error_response(ApiError(error.status_code, str(error.detail), code=code))

    openai = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=ERRORS)

    @openai.get("/models", response_model=ModelList)
    async def models(key: Caller) -> ModelList:
        return ModelList(data=model_cards(gateway.default_strategy, gateway.started))

    @openai.post("/chat/completions", response_model=ChatCompletion,
                 responses={200: {"content": {"text/event-stream": {}}}})  # fmt: skip
    async def chat_completions(body: ChatCompletionRequest, key: Caller) -> Any:
        arrived = time.perf_counter()
        if not body.stream:
            completion = await gateway.chat.complete(key, body, arrived=arrived)
            # Serialized once here (returning the model would have FastAPI validate it again).
            return Response(completion.model_dump_json(), media_type="application/json")
        chunks = gateway.chat.stream(key, body, arrived=arrived)
        first = await anext(chunks)  # errors before any text are plain HTTP errors
        return EventSourceResponse(_events(first, chunks), ping=gateway.ping_s)

    app.include_router(health_router(gateway.live, gateway.ready))
    app.include_router(openai)
    app.include_router(rules_router(gateway.rules, gateway.rule_admin, gateway.check))
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(Authenticated, auth=gateway.auth)  # outside BodyLimit: key first
    app.add_middleware(Measured)
    return app
