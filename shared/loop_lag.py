"""How late the event loop runs what is ready: a task asks to wake every ``every_s`` and
records how much later it woke (``alignstream_event_loop_lag_seconds``). Every await of the
service (a Kafka publish, a Redis call, an HTTP answer) waits at least this long again, so a
lagging loop shows up here before it shows up as a latency no stage accounts for."""

from __future__ import annotations

import asyncio
import contextlib

from shared.metrics import EVENT_LOOP_LAG


class LoopLag:
    def __init__(self, service: str, *, every_s: float = 0.05) -> None:
        self.service = service
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        observed = EVENT_LOOP_LAG.labels(self.service)
        while True:
            asked = loop.time()
            await asyncio.sleep(self.every_s)
            observed.observe(max(0.0, loop.time() - asked - self.every_s))
