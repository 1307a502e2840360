"""The offline model in its own worker process: the same vectors as in the service's process, a
worker that dies is replaced (the call in flight fails, so its batch is retried), and closing
stops the worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.devstack.process import pid_alive
from shared.embedders import EmbedderSettings, make_embedder
from shared.embedders.use import UniversalSentenceEncoder
from shared.embedders.worker import WorkerProcessEmbedder

TEXTS = [
    "Customer records may not be shared.",
    "电动自行车不得搭载成年人。",
    "Refunds within 30 days.",
]


@pytest.mark.timeout(120)
async def test_worker_gives_the_in_process_vectors(use_embedder: UniversalSentenceEncoder) -> None:
    worker = make_embedder(EmbedderSettings())
    assert isinstance(worker, WorkerProcessEmbedder)  # the default for services
    try:
        await worker.start()
        got = await worker.embed(TEXTS)
    finally:
        await worker.close()
    assert got.shape == (3, worker.dim)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, await use_embedder.embed(TEXTS), atol=1e-5)


@pytest.mark.timeout(120)
async def test_a_dead_worker_is_replaced_and_close_stops_it() -> None:
    worker = WorkerProcessEmbedder(threads=1)
    try:
        first = await worker.worker_pid()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="worker process died"):
            await worker.embed(TEXTS)
        assert (await worker.embed(TEXTS)).shape == (3, worker.dim)
        second = await worker.worker_pid()
        assert second != first
        os.kill(second, signal.SIGINT)  # a Ctrl-C reaches the worker too: it carries on
        await asyncio.sleep(0.2)
        assert (await worker.embed(TEXTS[:1])).shape == (1, worker.dim)
    finally:
        await worker.close()
    for _ in range(50):
        if not pid_alive(second):
            break
        await asyncio.sleep(0.1)
    assert not pid_alive(second)


@pytest.mark.timeout(120)
async def test_concurrent_first_calls_start_one_worker() -> None:
    """Both ingest lanes may embed before the worker runs: one worker starts, none is left over."""
    before = len(multiprocessing.active_children())
    worker = WorkerProcessEmbedder(threads=1)
    try:
        first, second = await asyncio.gather(worker.embed(TEXTS[:1]), worker.embed(TEXTS[1:]))
        assert (first.shape, second.shape) == ((1, worker.dim), (2, worker.dim))
        assert len(multiprocessing.active_children()) == before + 1
    finally:
        await worker.close()


@pytest.mark.timeout(120)
async def test_the_worker_exits_when_its_service_is_killed() -> None:
    """kill -9 of the service leaves no worker behind (each one holds its model's memory)."""
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import asyncio\n"
        "from shared.embedders.worker import WorkerProcessEmbedder\n"
        "async def main():\n"
        "    worker = WorkerProcessEmbedder(threads=1)\n"
        "    print(await worker.worker_pid(), flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n",
        cwd=Path(__file__).parents[2], stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert service.stdout is not None
    worker = int(await asyncio.wait_for(service.stdout.readline(), timeout=90))
    assert pid_alive(worker)
    service.kill()
    await service.wait()
    for _ in range(50):
        if not pid_alive(worker):
            break
        await asyncio.sleep(0.1)
    assert not pid_alive(worker)
