"""Audit entries leave in batches: one ``audit.entries`` record per tenant for the entries that
came within ``wait_s`` (or ``max_entries`` of them), instead of a record per answer. Each answer
still waits for its own entry to be acknowledged before its request's offset is committed (a
crash loses no entry: the request is redelivered and answered again), but the answer itself is
published at once: nobody waits for the batch but the commit.

A batch the broker refuses for good (too large) is split in halves; a broker outage is retried
with back-off until the service stops (the entries' requests then stay uncommitted)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shared import events
from shared.dlq import backoff_after
from shared.kafka import OversizedMessage
from shared.service import Publisher

log = logging.getLogger(__name__)

Waiter = tuple[events.AuditEntry, "asyncio.Future[bool]"]


class AuditBatches:
    def __init__(
        self,
        out: Publisher,
        topic: str,
        *,
        backoff_s: float,
        stopping: Callable[[], bool],
        wait_s: float = 0.005,
        max_entries: int = 128,
    ) -> None:
        self.out = out
        self.topic = topic
        self.backoff_s = backoff_s
        self.stopping = stopping
        self.wait_s = wait_s
        self.max_entries = min(max_entries, events.MAX_AUDIT_BATCH)
        self._pending: dict[str, list[Waiter]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, entry: events.AuditEntry) -> asyncio.Future[bool]:
        """Queue the entry: a future, True once its batch is acknowledged, False if the service
        stopped first. A plain future, not a coroutine: an answer awaits it after its own
        publish without a task of its own (two tasks per answer were 2% of the answer path)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiting = self._pending.setdefault(entry.tenant, [])
        waiting.append((entry, future))
        if len(waiting) >= self.max_entries:
            self._flush(entry.tenant)
        elif entry.tenant not in self._timers:
            self._timers[entry.tenant] = loop.call_later(self.wait_s, self._flush, entry.tenant)
        return future

    def _flush(self, tenant: str) -> None:
        timer = self._timers.pop(tenant, None)
        if timer is not None:
            timer.cancel()
        batch = self._pending.pop(tenant, [])
        if batch:
            task = asyncio.create_task(self._send(tenant, batch), name="audit-batch")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, tenant: str, batch: list[Waiter]) -> None:
        try:
            sent = await self._publish(tenant, batch)
        except BaseException as exc:  # an entry that can never be published: its answer fails
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for _, future in batch:
            if not future.done():
                future.set_result(sent)

    async def _publish(self, tenant: str, batch: list[Waiter]) -> bool:
        record = events.AuditBatch(tenant=tenant, entries=tuple(e for e, _ in batch))
        try:
            body = self.out.encode_bounded(record)
        except OversizedMessage:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            first = await self._publish(tenant, batch[:half])
            return first and await self._publish(tenant, batch[half:])
        failures = 0
        while True:
            try:
                await self.out.publish_bodies(self.topic, [(tenant, body)])
                return True
            except Exception:
                failures += 1
                log.warning("could not publish audit entries; retrying", exc_info=True,
                            extra={"tenant": tenant, "entries": len(batch)})  # fmt: skip
            if self.stopping():
                return False
            await asyncio.sleep(backoff_after(failures, self.backoff_s))
