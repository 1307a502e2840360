"""A minimal OpenAI-compatible chat endpoint, for tests, benchmarks and offline development:
``POST /v1/chat/completions`` on loopback (JSON, keep-alive, no streaming); a subclass writes
``answer`` (the keyword judge, scripted models in fault tests and the soak benchmark)."""

from __future__ import annotations

import asyncio
import json
import time

from shared.http import TcpServer, read_request


class ChatCompletionServer(TcpServer):
    """A minimal ``POST /v1/chat/completions`` server on loopback (JSON, keep-alive, no
    streaming); a subclass writes ``answer``. An exception in ``answer`` is an HTTP 500."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def answer(self, messages: list[dict[str, str]]) -> str:
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, body = await read_request(reader)
                request = json.loads(body)
                self.requests += 1
                try:
                    content = await self.answer(request["messages"])
                except Exception as exc:
                    writer.write(_response(500, {"error": {"message": str(exc)}}))
                    await writer.drain()
                    continue
                writer.write(_response(200, {
                    "id": f"chat-{self.requests}", "object": "chat.completion",
                    "created": int(time.time()), "model": request["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()


def _response(status: int, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    reason = "OK" if status == 200 else "Internal Server Error"
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n" \
           f"Content-Length: {len(body)}\r\n\r\n"  # fmt: skip
    return head.encode() + body
