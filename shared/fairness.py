"""Slots shared fairly by tenants: wherever work queues for a limited resource (generation
slots, the embedder), no tenant can hold more than its share while others wait.

``FairSlots`` is max-min fair queuing with caps per tenant:
- a tenant never holds more than ``per_tenant`` slots (a hard cap; default: all of them);
- while another tenant is active (holds a slot, or asked for one within ``active_s``), a tenant
  is granted no slot beyond ``shared_cap``: ``capacity - shared_cap`` slots stay free for the
  others, so a steady tenant never waits behind a hog's long work, and a tenant alone still
  uses every slot (the engine stays full);
- a freed slot goes to the waiting tenant that holds the fewest slots now (ties: the one that
  has waited longest); a tenant's own waiters are served first in, first out;
- a waiter that is cancelled leaves the queue, and a slot granted to it as it was cancelled is
  handed on, so cancelled work never keeps a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator


def default_share(capacity: int) -> int:
    """The per-tenant cap when none is configured: three quarters of the slots (at least one),
    so a quarter is always free for the other tenants."""
    return max(1, capacity * 3 // 4)


class FairSlots:
    def __init__(
        self,
        capacity: int,
        per_tenant: int | None = None,
        *,
        shared_cap: int | None = None,
        active_s: float = 10.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.per_tenant = min(capacity, per_tenant or capacity)
        self.shared_cap = min(self.per_tenant, shared_cap or self.per_tenant)
        self.active_s = active_s
        self._asked: dict[str, float] = {}
        """When each tenant last asked for a slot (pruned after ``active_s``)."""
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def held(self, tenant: str) -> int:
        return self._held.get(tenant, 0)

    def waiting(self, tenant: str | None = None) -> int:
        """Waiters (of ``tenant``)."""
        if tenant is not None:
            return len(self._waiting.get(tenant, ()))
        return sum(len(q) for q in self._waiting.values())

    async def acquire(self, tenant: str) -> None:
        """Wait for a slot for ``tenant`` (cancellable at any point without leaking it)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asked[tenant] = time.monotonic()
        self._waiting.setdefault(tenant, deque()).append((next(self._order), future))
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(tenant)  # granted as it was cancelled: hand it on
            else:
                self._forget(tenant, future)
            raise

    def release(self, tenant: str) -> None:
        held = self._held.get(tenant, 0)
        if held <= 0:
            raise RuntimeError(f"tenant {tenant[:80]!r} holds no slot")
        if held == 1:
            del self._held[tenant]
        else:
            self._held[tenant] = held - 1
        self._in_use -= 1
        self._dispatch()

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        await self.acquire(tenant)
        try:
            yield
        finally:
            self.release(tenant)

    def _dispatch(self) -> None:
        while self._in_use < self.capacity:
            tenant = self._next_tenant()
            if tenant is None:
                return
            _, future = self._waiting[tenant].popleft()
            if not self._waiting[tenant]:
                del self._waiting[tenant]
            if future.done():  # cancelled, not yet forgotten
                continue
            self._held[tenant] = self._held.get(tenant, 0) + 1
            self._in_use += 1
            future.set_result(None)

    def _active(self) -> set[str]:
        """Tenants holding a slot, waiting, or that asked within ``active_s``."""
        now = time.monotonic()
        for tenant in [t for t, at in self._asked.items() if now - at > self.active_s]:
            if tenant not in self._held and tenant not in self._waiting:
                del self._asked[tenant]  # tenants come from requests: bounded
        return set(self._asked) | set(self._held)

    def _next_tenant(self) -> str | None:
        """The waiting tenant under its cap that holds the fewest slots (then the oldest)."""
        best: tuple[int, int, str] | None = None
        shared = self.shared_cap < self.per_tenant and len(self._active()) > 1
        cap = self.shared_cap if shared else self.per_tenant
        for tenant, queue in self._waiting.items():
            held = self._held.get(tenant, 0)
            if held >= cap:
                continue
            rank = (held, queue[0][0], tenant)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[2]

    def _forget(self, tenant: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant)
        if queue is None:
            return
        for entry in queue:
            if entry[1] is future:
                queue.remove(entry)
                break
        if not queue:
            del self._waiting[tenant]
