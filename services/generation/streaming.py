"""Publish an answer's text while it is generated, coalesced into a few messages.

One Kafka message per token would multiply the broker's load by the answer length; pieces are
buffered and flushed every ``interval_s`` (and at the end), so a reader sees text arrive smoothly
at a bounded message rate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from shared.events import ChatRequest, ChatToken

Publish = Callable[[ChatToken], Awaitable[None]]


class TokenStream:
    def __init__(self, request: ChatRequest, publish: Publish, interval_s: float) -> None:
        self.request = request
        self._publish = publish
        self._interval_s = interval_s
        self._pending: list[str] = []
        self._seq = 0
        self._flusher: asyncio.Task[None] | None = None

    def add(self, text: str) -> None:
        """Buffer a piece of text (called from the backend's generation loop)."""
        self._pending.append(text)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_periodically())

    async def close(self) -> None:
        """Flush what is left as the final piece."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._flush(final=True)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._pending:
                await self._flush(final=False)

    async def _flush(self, *, final: bool) -> None:
        text, self._pending = "".join(self._pending), []
        token = ChatToken(request_id=self.request.request_id, tenant=self.request.tenant,
                          seq=self._seq, text=text, final=final)  # fmt: skip
        self._seq += 1
        await self._publish(token)
