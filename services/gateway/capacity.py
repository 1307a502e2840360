"""Open chat requests of one gateway instance, bounded per instance, per tenant and per key.

A request over any bound is refused at once (429 with ``Retry-After``), never queued: a tenant
whose slow requests fill its own share leaves the rest of the instance to the others. The
defaults leave a quarter of the instance to other tenants and half of a tenant's share to its
other keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from services.gateway.errors import rate_limited
from services.gateway.metrics import IN_FLIGHT, REFUSED
from shared.fairness import default_share
from shared.tenants import ApiKey


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class OpenLimits:
    total: int
    per_tenant: int
    per_key: int

    @classmethod
    def derived(cls, total: int, per_tenant: int | None, per_key: int | None) -> OpenLimits:
        """Unset caps: three quarters of the instance per tenant, half of that per key."""
        tenant = min(total, per_tenant or default_share(total))
        return cls(total, tenant, min(tenant, per_key or max(1, tenant // 2)))


class OpenRequests:
    def __init__(self, limits: OpenLimits) -> None:
        self.limits = limits
        self.total = 0
        self._tenants: dict[str, int] = {}
        self._keys: dict[str, int] = {}

    def of_tenant(self, tenant: str) -> int:
        return self._tenants.get(tenant, 0)

    def of_key(self, key_id: str) -> int:
        return self._keys.get(key_id, 0)

    @contextlib.contextmanager
    def admitted(self, key: ApiKey) -> Iterator[None]:
        """Count the request as open while it runs; 429 when a bound is reached."""
        self._check(key)
        self.total += 1
        self._tenants[key.tenant] = self.of_tenant(key.tenant) + 1
        self._keys[key.key_id] = self.of_key(key.key_id) + 1
        IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.total -= 1
            _decrement(self._tenants, key.tenant)
            _decrement(self._keys, key.key_id)
            IN_FLIGHT.dec()

    def _check(self, key: ApiKey) -> None:
        limits = self.limits
        if self.total >= limits.total:
            REFUSED.labels("instance").inc()
            raise rate_limited(1.0, f"This gateway instance has {self.total} requests open, its "
                                    "limit; retry shortly.")  # fmt: skip
        if self.of_tenant(key.tenant) >= limits.per_tenant:
            REFUSED.labels("tenant").inc()
            raise rate_limited(1.0, f"Your tenant has {limits.per_tenant} requests open on "
                                    "this gateway instance, its limit; retry when one is "
                                    "answered.")  # fmt: skip
        if self.of_key(key.key_id) >= limits.per_key:
            REFUSED.labels("key").inc()
            raise rate_limited(1.0, f"This API key has {limits.per_key} requests open on "
                                    "this gateway instance, its limit; retry when one is "
                                    "answered.")  # fmt: skip


def _decrement(counts: dict[str, int], name: str) -> None:
    left = counts[name] - 1
    if left:
        counts[name] = left
    else:
        del counts[name]  # names come from keys: no entry outlives its requests
