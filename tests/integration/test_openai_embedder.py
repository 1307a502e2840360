"""The OpenAI-compatible embedder against a real HTTP ``/v1/embeddings`` endpoint.

The endpoint is a minimal server in this test that answers in the OpenAI wire format with
vectors from the offline USE model, so the real ``openai`` client code path is exercised.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from shared.embedders import EmbedderSettings
from shared.embedders.openai_compat import OpenAIEmbedder
from shared.embedders.use import UniversalSentenceEncoder


@pytest.fixture
async def endpoint(use_embedder: UniversalSentenceEncoder) -> AsyncIterator[tuple[str, list[int]]]:
    batch_sizes: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        request = json.loads(await reader.readexactly(length))
        texts = request["input"]
        batch_sizes.append(len(texts))
        vectors = use_embedder.embed_sync(texts)
        body = json.dumps(
            {
                "object": "list",
                "model": request["model"],
                # Out of order on purpose: clients must sort by index.
                "data": [
                    {"object": "embedding", "index": i, "embedding": vectors[i].tolist()}
                    for i in reversed(range(len(texts)))
                ],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1", batch_sizes
    server.close()
    await server.wait_closed()


async def test_openai_embedder_learns_dim_and_batches(
    endpoint: tuple[str, list[int]], use_embedder: UniversalSentenceEncoder
) -> None:
    url, batch_sizes = endpoint
    embedder = OpenAIEmbedder(EmbedderSettings(backend="openai", base_url=url, batch_size=4))
    await embedder.start()
    assert embedder.dim == use_embedder.dim
    texts = [f"rule number {i}" for i in range(10)]
    vectors = await embedder.embed(texts)
    await embedder.close()
    assert vectors.shape == (10, use_embedder.dim)
    assert np.allclose(vectors, use_embedder.embed_sync(texts), atol=1e-4)
    assert sorted(batch_sizes[1:]) == [2, 4, 4]
