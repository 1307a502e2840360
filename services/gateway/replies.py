"""Matching replies to open HTTP requests: each request waits on its own ``Waiter``; the
instance's reply topic is read by one subscriber that hands each response and token piece to
the waiter of its (tenant, request id). Replies nobody waits for any more (the client left,
or timed out) are counted and dropped: the request was answered, just not to anyone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from pydantic import Field, TypeAdapter

from shared import events

Reply = Annotated[events.ChatResponse | events.ChatToken, Field(discriminator="kind")]
REPLY: TypeAdapter[events.ChatResponse | events.ChatToken] = TypeAdapter(Reply)


class Waiter:
    """One request's replies: its text pieces in ``seq`` order (each once), then its response."""

    def __init__(self) -> None:
        self._pieces: dict[int, str] = {}
        self._next = 0
        self._response: events.ChatResponse | None = None
        self._changed = asyncio.Event()

    def offer(self, reply: events.ChatResponse | events.ChatToken) -> None:
        if isinstance(reply, events.ChatToken):
            if reply.seq >= self._next:
                self._pieces.setdefault(reply.seq, reply.text)
        elif self._response is None:  # a redelivered response is a repeat
            self._response = reply
        self._changed.set()

    async def response(self) -> events.ChatResponse:
        """The response, once it arrived (the caller bounds the wait)."""
        while self._response is None:
            self._changed.clear()
            await self._changed.wait()
        return self._response

    async def stream(self) -> AsyncIterator[str | events.ChatResponse]:
        """Text pieces as they arrive, in order, then the response. Pieces travel ahead of the
        response on the same partition, so once it is here every piece that was published is
        too; one that was not (a broker hiccup) is covered by the response's full text."""
        while True:
            while self._next in self._pieces:
                yield self._pieces.pop(self._next)
                self._next += 1
            if self._response is not None:
                yield self._response
                return
            self._changed.clear()
            await self._changed.wait()


class ReplyWaiters:
    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Waiter] = {}
        self.unmatched = 0

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def waiting(self, request: events.ChatRequest) -> Iterator[Waiter]:
        """Register before the request is published (no reply can be missed); always removed."""
        slot = (request.tenant, request.request_id)
        waiter = self._open[slot] = Waiter()
        try:
            yield waiter
        finally:
            self._open.pop(slot, None)

    def dispatch(self, reply: events.ChatResponse | events.ChatToken) -> bool:
        """Hand a reply to its waiter; False when no one waits for it."""
        waiter = self._open.get((reply.tenant, reply.request_id))
        if waiter is None:
            self.unmatched += 1
            return False
        waiter.offer(reply)
        return True
