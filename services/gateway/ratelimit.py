"""A token bucket per API key in Redis: one atomic script per request, shared by every gateway
instance (a tenant cannot multiply its limit by spreading over instances)."""

from __future__ import annotations

import redis.asyncio as aioredis

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst (tokens). The bucket holds ``tokens`` and
# the time ``ts`` (ms, the server's clock) it was last filled; one token per request. Returns
# 0 when admitted, else the milliseconds until a token is there.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, key_prefix: str) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self._take = redis.register_script(_TAKE)

    async def acquire(self, key_id: str, rate_per_s: float) -> float:
        """0 when the request is admitted; else the seconds until it would be."""
        burst = max(1.0, rate_per_s)  # one second's worth
        bucket = f"{self.key_prefix}:ratelimit:{key_id}"
        wait_ms = await self._take(keys=[bucket], args=[repr(rate_per_s), repr(burst)])
        return int(wait_ms) / 1000.0
