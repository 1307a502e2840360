"""Tiny asyncio HTTP servers: the services' ``/metrics`` (Prometheus), ``/healthz`` and
``/readyz`` endpoint (the OpenAI-compatible doubles of ``shared/testing`` build on ``TcpServer``).

Services have no other HTTP surface, so a full web framework would be dead weight here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Self

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

ReadyCheck = Callable[[], Awaitable[bool]]


class TcpServer:
    """An asyncio TCP server (port 0: a free one, known after ``start``); ``stop`` also closes
    connections still open, which would otherwise keep it waiting (HTTP keep-alive)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            await self._handle(reader, writer)
        finally:
            self._connections.discard(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request of a keep-alive connection: its head and its body (by
    Content-Length); ``IncompleteReadError`` when the client closed."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)  # fmt: skip
    return head, await reader.readexactly(length)


class HealthServer(TcpServer):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: ReadyCheck,
        live: ReadyCheck,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        super().__init__(host, port)
        self._ready = ready
        self._live = live
        self._registry = registry

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                pass  # headers are not needed
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            status, content_type, body = await self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        if path.startswith("/metrics"):
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path.startswith("/healthz"):
            ok = await self._live()
        elif path.startswith("/readyz"):
            ok = await self._ready()
        else:
            return "404 Not Found", "text/plain", b"not found\n"
        return (
            ("200 OK", "text/plain", b"ok\n")
            if ok
            else ("503 Service Unavailable", "text/plain", b"not ready\n")
        )
