"""Who a request speaks for: its ``Authorization: Bearer`` API key, verified against the
tenant keys in Redis (``shared/tenants.py``), then its rate limit: the key's own, or the
gateway's default for keys that set none (``default_rate_limit_per_s``)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

from services.gateway.errors import forbidden, rate_limited, unauthorized
from services.gateway.ratelimit import RateLimiter
from shared.tenants import MAX_PRESENTED_CHARS, ApiKey, ApiKeys

MAX_CACHED = 10_000


class Authenticator:
    """Verified keys are reused for ``cache_s`` (revocation takes effect within it); so are
    refusals, so a flood of bad keys does not become a flood of Redis reads."""

    def __init__(
        self,
        keys: ApiKeys,
        limiter: RateLimiter,
        *,
        cache_s: float,
        default_rate_per_s: float | None = None,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.cache_s = cache_s
        self.default_rate_per_s = default_rate_per_s
        self._verified: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()

    async def key_of(self, token: str | None) -> ApiKey:
        """The live key a bearer token is; 401 otherwise."""
        if not token or len(token) > MAX_PRESENTED_CHARS:
            raise unauthorized()
        # Keyed by the token's hash: no secret is kept in the cache.
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        entry = self._verified.get(digest)
        if entry is None or now - entry[0] >= self.cache_s:
            entry = (now, await self.keys.verify(token))
            self._verified[digest] = entry
            while len(self._verified) > MAX_CACHED:  # tokens come from anyone: bounded
                self._verified.popitem(last=False)
        self._verified.move_to_end(digest)
        key = entry[1]
        if key is None:
            raise unauthorized()
        return key

    async def admit(self, token: str | None, *, admin: bool = False) -> ApiKey:
        """The request's key once it is verified and within its rate limit (401, 403, 429)."""
        key = await self.key_of(token)
        if admin and not key.admin:
            raise forbidden("This endpoint needs an admin key of the tenant.")
        rate = key.rate_limit_per_s or self.default_rate_per_s
        if rate is not None:
            wait_s = await self.limiter.acquire(key.key_id, rate)
            if wait_s > 0:
                raise rate_limited(wait_s, f"Rate limit of {rate:g} requests/s reached for "
                                           "this key.")  # fmt: skip
        return key
