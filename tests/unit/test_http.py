"""The metrics and health endpoint."""

from __future__ import annotations

import asyncio

import shared.metrics  # noqa: F401  (registers the metrics the endpoint must expose)
from shared.http import HealthServer


async def get(port: int, path: str) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


async def test_metrics_health_and_readiness() -> None:
    ready = False

    async def is_ready() -> bool:
        return ready

    async def is_live() -> bool:
        return True

    server = HealthServer("127.0.0.1", 0, ready=is_ready, live=is_live)
    await server.start()
    try:
        status, body = await get(server.port, "/metrics")
        assert status == "HTTP/1.1 200 OK"
        assert b"alignstream_messages_consumed_total" in body
        assert (await get(server.port, "/healthz"))[0] == "HTTP/1.1 200 OK"
        assert (await get(server.port, "/readyz"))[0] == "HTTP/1.1 503 Service Unavailable"
        ready = True
        assert (await get(server.port, "/readyz"))[0] == "HTTP/1.1 200 OK"
        assert (await get(server.port, "/nope"))[0] == "HTTP/1.1 404 Not Found"
    finally:
        await server.stop()
