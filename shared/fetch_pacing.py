"""Fetch waits that follow the traffic on the chat path: short while answers flow, long when idle.

On a broker whose fetch is not woken by new data (Tansu polls its storage inside a fetch, first
after half the wait), a hop costs a fraction of the consumer's fetch wait. A short wait takes
milliseconds off every answer but costs each idle consumer CPU (and the broker a storage poll)
all day. So a chat-path consumer fetches with the short wait only while records arrive (or a
client waits for replies) and returns to the long one ``busy_for_s`` after the last.

aiokafka reads its fetcher's wait each time it builds a fetch request; the pacer sets that
attribute. Without it (another aiokafka) pacing is off and the consumer keeps its configured
wait: ``tests/unit/test_fetch_pacing.py`` pins the attribute against the installed aiokafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

FETCHER_WAIT = "_fetch_max_wait_ms"
"""The attribute of aiokafka's ``Fetcher`` that each new fetch request reads its wait from."""


class FetchPacer:
    """Switches one consumer between an idle and a busy fetch wait.

    ``consumer`` returns the aiokafka consumer (None before it started): FastStream creates its
    subscribers' consumers only when the broker starts."""

    def __init__(
        self,
        consumer: Callable[[], Any],
        *,
        idle_ms: int,
        busy_ms: int,
        busy_for_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self.idle_ms = idle_ms
        self.busy_ms = busy_ms
        self.busy_for_s = busy_for_s
        self._clock = clock
        self._last_busy = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.enabled = busy_ms < idle_ms

    @classmethod
    def for_chat(cls, settings: KafkaSettings, consumer: Callable[[], Any]) -> FetchPacer:
        """The chat path's pacer: ``chat_fetch_max_wait_ms`` idle, ``chat_fetch_busy_wait_ms``
        for ``chat_fetch_busy_for_ms`` after the last sign of traffic (off when the busy wait is
        not the shorter one, e.g. on Apache Kafka, whose fetch returns when data arrives)."""
        return cls(consumer, idle_ms=settings.chat_fetch_max_wait_ms,
                   busy_ms=settings.chat_fetch_busy_wait_ms,
                   busy_for_s=settings.chat_fetch_busy_for_ms / 1000)  # fmt: skip

    @property
    def busy(self) -> bool:
        return self._timer is not None

    def traffic(self) -> None:
        """Records arrived (or a client waits for some): fetch with the busy wait until
        ``busy_for_s`` passes without another call. Cheap enough to call per record."""
        if not self.enabled:
            return
        self._last_busy = self._clock()
        if self._timer is None and self._set_wait(self.busy_ms):
            self._timer = asyncio.get_running_loop().call_later(self.busy_for_s, self._expire)

    def close(self) -> None:
        """Stop the timer (the consumer is stopping); the wait stays as it is."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        quiet_for = self._clock() - self._last_busy
        if quiet_for < self.busy_for_s:  # traffic since the timer was set: look again later
            self._timer = asyncio.get_running_loop().call_later(
                self.busy_for_s - quiet_for, self._expire
            )
            return
        self._timer = None
        self._set_wait(self.idle_ms)

    def _set_wait(self, wait_ms: int) -> bool:
        fetcher = getattr(self._consumer(), "_fetcher", None)
        if fetcher is None:  # not started yet, or stopped
            return False
        if not hasattr(fetcher, FETCHER_WAIT):
            log.warning("aiokafka's fetcher has no %s: chat fetch pacing is off", FETCHER_WAIT)
            self.enabled = False
            return False
        setattr(fetcher, FETCHER_WAIT, wait_ms)
        return True
