"""The offline model in a worker process of its own (``ALIGNSTREAM_EMBEDDER_WORKER_PROCESS``).

Embedding with the in-process model holds the service's GIL for its Python work (tokenizing,
numpy glue), and the event loop's Kafka work (fetching, decoding, confirming) holds it back: on
2 cores a bulk load embedded 15% slower inside the ingest service than alone. In a worker process
both run at once; a batch costs a pickle of its texts and of its vectors (256 x 512 float32 =
512 KB).

One worker, one call at a time (as the in-process model). It ignores SIGINT and SIGTERM: the
service decides when it stops (``close``), so a Ctrl-C does not break a batch in flight; it exits
with the service (after a kill -9 too: it watches its parent). A worker that dies is
replaced on the next call; the call in flight fails and its batch is retried by the service.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from shared.embedders.base import Vectors
from shared.embedders.use import USE_DIM, UniversalSentenceEncoder

_model: UniversalSentenceEncoder | None = None
"""The worker's model: set once by ``_load`` in the worker process (never in the service)."""


PARENT_POLL_S = 0.5


def _exit_with(parent: int) -> None:
    """Exit once the service is gone. Its end of the queue does not close when it is killed
    (the worker holds both ends of the pipes), so an orphan would otherwise wait for work for
    good, holding its model's memory (seen: one left behind per kill -9 of ingest)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _load(threads: int | None, batch_size: int, parent: int) -> None:
    global _model
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent").start()
    _model = UniversalSentenceEncoder(threads=threads, batch_size=batch_size)
    _model.embed_sync(["warm up"])


def _embed(texts: list[str]) -> Vectors:
    assert _model is not None, "worker not initialized"
    return _model.embed_sync(texts)


class WorkerProcessEmbedder:
    """``UniversalSentenceEncoder`` run in a spawned worker process."""

    name = UniversalSentenceEncoder.name
    dim = USE_DIM

    def __init__(self, *, threads: int | None = None, batch_size: int = 64) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._pool: ProcessPoolExecutor | None = None
        # Both ingest lanes may call ``embed`` before the worker runs (or after it died): one of
        # them starts it, the other waits, so no second worker is spawned and left behind.
        self._starting = asyncio.Lock()

    async def worker_pid(self) -> int:
        """The worker's process id (tests kill it); starts the worker."""
        await self.start()
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, os.getpid)

    async def start(self) -> None:
        """Start the worker and wait until its model is loaded (a failure shows here)."""
        async with self._starting:
            if self._pool is not None:
                return
            pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a running loop
                initializer=_load,
                initargs=(self.threads, self.batch_size, os.getpid()),
            )
            try:  # the first call runs after the initializer: the model is loaded
                await asyncio.get_running_loop().run_in_executor(pool, os.getpid)
            except BaseException:
                await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
                raise
            self._pool = pool

    async def embed(self, texts: Sequence[str]) -> Vectors:
        await self.start()
        assert self._pool is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, _embed, list(texts))
        except BrokenProcessPool as exc:
            await self.close()  # the next call starts a new worker
            raise RuntimeError("the embedding worker process died; it is restarted") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
