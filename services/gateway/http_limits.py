"""The request head bounded at the socket, before any application code runs.

uvicorn's httptools protocol reads a request's header block whatever its size (measured: a
64 MiB head with 65,537 headers was read whole and handed to the app). ``bounded_http`` is that
protocol with two caps: the bytes of a head that has not ended yet, and the number of headers.
Past either, the connection gets ``431 Request Header Fields Too Large`` (an OpenAI error body)
and is closed; the app never sees the request, so no key lookup, body read or parse is spent
on it.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _refusal(message: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                 "param": None, "code": "headers_too_large"}}).encode()  # fmt: skip
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedHeadProtocol(HttpToolsProtocol):
    """Set ``max_head_bytes`` and ``max_headers`` on a subclass (``bounded_http``)."""

    max_head_bytes = 32 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._heads_ended = 0
        self._header_count = self._parsed_head_bytes = 0
        self._refused: str | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count, self._parsed_head_bytes = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._parsed_head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # A head that arrives whole in one read is measured as it is parsed; one that goes on
        # over several reads is measured by the bytes read (``data_received``).
        self._header_count += 1
        self._parsed_head_bytes += len(name) + len(value) + 4
        if self._header_count > self.max_headers:
            self._refused = f"More than {self.max_headers} request headers."
        elif self._parsed_head_bytes > self.max_head_bytes:
            self._refused = f"The request head is over {self.max_head_bytes} bytes."
        if self._refused is None:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_ended += 1
        if self._refused is None:  # a refused request never reaches the app
            super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._refused is None:
            super().on_message_complete()
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        was_in_head, heads_ended = self._in_head, self._heads_ended
        super().data_received(data)
        if self._heads_ended != heads_ended:  # a head ended in this data: count anew
            self._head_bytes = 0
        elif was_in_head and self._in_head:  # all of it was head, and the head goes on
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refused = f"The request head is over {self.max_head_bytes} bytes."
        if self._refused is not None and not self.transport.is_closing():
            self.transport.write(_refusal(self._refused))
            self.transport.close()


def bounded_http(max_head_bytes: int, max_headers: int) -> type[BoundedHeadProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these caps."""
    return type("BoundedHead", (BoundedHeadProtocol,),
                {"max_head_bytes": max_head_bytes, "max_headers": max_headers})  # fmt: skip
