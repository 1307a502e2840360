"""``/health`` (liveness) and ``/health/readiness`` on the API's own port, as vLLM's and most
OpenAI-compatible servers answer them: a load balancer or a user checks the port they call.
The same answers as the service's ``/healthz`` and ``/readyz`` on its metrics port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[bool]]


def _answer(ok: bool) -> JSONResponse:
    return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)


def health_router(live: Check, ready: Check) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> JSONResponse:
        """200 while the gateway serves; 503 once it cannot (restart it)."""
        return _answer(await live())

    @router.get("/health/readiness")
    async def readiness() -> JSONResponse:
        """200 when the gateway can take requests now (broker, Redis and listener up)."""
        return _answer(await ready())

    return router
