"""Tenants' API keys: what the gateway's ``Authorization: Bearer`` maps to a tenant.

A key is ``ask_<key_id>_<secret>``, shown once when it is created. The store keeps only the
SHA-256 of the secret (256 random bits, so a fast hash is safe, as for GitHub and Stripe
tokens), with the key's tenant, whether it may manage rules (``admin``), an optional default
jurisdiction scope and request rate. Records are redis-om ``HashModel`` documents under the
deployment prefix (``{prefix}:{apikeys}:apikey:<key_id>``) with a RediSearch index on tenant, so
a tenant's keys are listed without scanning. The ``{apikeys}`` hash tag keeps every record in one
slot: on a Redis Cluster the index (which sees only its own node's keys) lives where they all
are. A revoked key stays listed (with when) and never
verifies again. Every presented key is hostile: its size and alphabet are checked before any
lookup, and the secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from aredis_om import Field, HashModel, NotFoundError

from shared.errors import Hinted
from shared.memory.keys import RuleKeys
from shared.redis import as_text, command
from shared.settings import RedisSettings

KEY_PATTERN = re.compile(r"^ask_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
"""``ask_`` + 12 hex digits of key id + ``_`` + 43 url-safe characters (32 random bytes)."""
MAX_PRESENTED_CHARS = 128
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
SCOPE_SEPARATOR = "|"
MAX_LABEL_CHARS = 200


class ApiKeyRecord(HashModel):
    """One key as stored (never the secret). Subclassed per deployment prefix
    (``ApiKeys``): redis-om binds a model's connection and prefix to its class."""

    key_id: str = Field(index=True)
    tenant: str = Field(index=True)
    digest: str
    admin: int = 0
    label: str = ""
    default_scope: str = ""
    """Jurisdictions joined by ``|`` (a node path never holds one)."""
    rate_limit_per_s: float = 0.0
    """0: no limit."""
    created_at: float = 0.0
    revoked_at: float = 0.0
    """0: not revoked."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed and as verified: who it speaks for, never its secret."""

    key_id: str
    tenant: str
    admin: bool
    label: str
    default_scope: tuple[str, ...]
    rate_limit_per_s: float | None
    created_at: float
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _view(record: Any) -> ApiKey:
    scope = tuple(s for s in str(record.default_scope).split(SCOPE_SEPARATOR) if s)
    rate = float(record.rate_limit_per_s)
    revoked = float(record.revoked_at)
    return ApiKey(key_id=record.key_id, tenant=record.tenant, admin=bool(int(record.admin)),
                  label=record.label, default_scope=scope, rate_limit_per_s=rate or None,
                  created_at=float(record.created_at), revoked_at=revoked or None)  # fmt: skip


class ApiKeys:
    """Create, list, revoke and verify API keys in one deployment's Redis."""

    def __init__(self, redis: aioredis.Redis, key_prefix: str) -> None:
        self.redis = redis

        class Meta:
            database = redis
            global_key_prefix = RuleKeys(key_prefix).api_keys_prefix
            model_key_prefix = "apikey"

        def body(namespace: dict[str, Any]) -> None:
            namespace.update(Meta=Meta, __module__=__name__)

        # Indexed here, not on the base: redis-om indexes one class per inheritance tree.
        self.model: Any = types.new_class("ApiKeyRecord", (ApiKeyRecord,), {"index": True}, body)

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> ApiKeys:
        """A store on its own connection (redis-om reads decoded strings)."""
        url = settings.url.get_secret_value()
        if settings.cluster:
            cluster = aioredis.RedisCluster.from_url(url, decode_responses=True, **settings.auth())
            return cls(cast(aioredis.Redis, cluster), settings.key_prefix)
        return cls(aioredis.from_url(url, decode_responses=True, **settings.auth()),
                   settings.key_prefix)  # fmt: skip

    async def open(self) -> None:
        """Create the tenant index if it is missing (idempotent)."""
        index = self.model.Meta.index_name
        if index not in {as_text(name) for name in await command(self.redis, "FT._LIST")}:
            schema = self.model.redisearch_schema().split()
            await command(self.redis, "FT.CREATE", index, *schema)

    async def close(self) -> None:
        await self.redis.aclose()

    async def create(
        self,
        tenant: str,
        *,
        admin: bool = False,
        label: str = "",
        default_scope: Sequence[str] = (),
        rate_limit_per_s: float | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key for ``tenant``: the key itself (shown once, never stored) and its record."""
        if not TENANT_PATTERN.fullmatch(tenant):
            raise Hinted(f"{tenant[:80]!r} is not a tenant id",
                         "letters, digits, '_' and '-', at most 64")  # fmt: skip
        if any(SCOPE_SEPARATOR in s or not s.strip() for s in default_scope):
            raise Hinted("a default scope entry is empty or holds '|'", "name tree nodes")
        if rate_limit_per_s is not None and not 0 < rate_limit_per_s <= 1e6:
            raise Hinted(f"rate limit {rate_limit_per_s} is out of range", "0 < limit <= 1e6")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = self.model(pk=key_id, key_id=key_id, tenant=tenant, digest=digest_of(secret),
                            admin=int(admin), label=label[:MAX_LABEL_CHARS],
                            default_scope=SCOPE_SEPARATOR.join(s.strip() for s in default_scope),
                            rate_limit_per_s=rate_limit_per_s or 0.0,
                            created_at=time.time())  # fmt: skip
        await record.save()
        return f"ask_{key_id}_{secret}", _view(record)

    async def of_tenant(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant``), oldest first."""
        query = self.model.find(self.model.tenant == tenant) if tenant else self.model.find()
        records = await query.all()
        return sorted((_view(r) for r in records), key=lambda k: (k.created_at, k.key_id))

    async def revoke(self, key_id: str, *, tenant: str | None = None) -> ApiKey:
        """Revoke a key (idempotent); ``Hinted`` when there is none (of ``tenant``)."""
        record = await self._record(key_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            raise Hinted(f"no API key {key_id[:40]!r}" + (f" of {tenant}" if tenant else ""),
                         "alignstream tenants keys")  # fmt: skip
        if not float(record.revoked_at):
            record.revoked_at = time.time()
            await record.save()
        return _view(record)

    async def verify(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, when it is a live key; None otherwise (no, bad, unknown
        or revoked key: the caller answers 401 and says no more)."""
        if len(presented) > MAX_PRESENTED_CHARS:
            return None
        match = KEY_PATTERN.fullmatch(presented)
        if match is None:
            return None
        record = await self._record(match.group(1))
        if record is None or not hmac.compare_digest(record.digest, digest_of(match.group(2))):
            return None
        key = _view(record)
        return None if key.revoked else key

    async def _record(self, key_id: str) -> Any:
        if not re.fullmatch(r"[0-9a-f]{12}", key_id):
            return None
        try:
            return await self.model.get(key_id)
        except NotFoundError:
            return None
