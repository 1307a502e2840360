"""Who a gateway request speaks for, decided from its headers alone: the key cache (verified and
refused tokens, expiry, bound), the admin right, the rate limit taken, a bound key's scope, and
the middleware that answers a refused request without calling the app."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from services.gateway import auth as auth_module
from services.gateway.auth import Authenticator
from services.gateway.authenticated import STATE_KEY, Authenticated
from services.gateway.errors import ApiError
from services.gateway.key_scope import searched_scope
from shared.tenants import MAX_PRESENTED_CHARS, ApiKey


def key(key_id: str = "k1", *, admin: bool = False, rate: float | None = None,
        scope: tuple[str, ...] = ()) -> ApiKey:  # fmt: skip
    return ApiKey(key_id=key_id, tenant="acme", admin=admin, label="", default_scope=scope,
                  rate_limit_per_s=rate, created_at=0.0, revoked_at=None)  # fmt: skip


class CountingKeys:
    """Verifies tokens from a table and counts every lookup (each one is a Redis read)."""

    def __init__(self, table: dict[str, ApiKey]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def verify(self, presented: str) -> ApiKey | None:
        self.lookups.append(presented)
        return self.table.get(presented)


class ScriptedLimiter:
    def __init__(self, wait_s: float = 0.0) -> None:
        self.wait_s = wait_s
        self.taken: list[tuple[str, float]] = []

    async def acquire(self, key_id: str, rate_per_s: float) -> float:
        self.taken.append((key_id, rate_per_s))
        return self.wait_s


class Clock:
    def __init__(self) -> None:
        self.now = 1.0  # small: elapsed time is a difference, not a remainder

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("services.gateway.auth.time.monotonic", clock)
    return clock


def authenticator(
    keys: CountingKeys,
    limiter: ScriptedLimiter | None = None,
    *,
    cache_s: float = 5.0,
    default_rate: float | None = None,
) -> Authenticator:
    return Authenticator(
        keys,  # type: ignore[arg-type]
        limiter or ScriptedLimiter(),  # type: ignore[arg-type]
        cache_s=cache_s,
        default_rate_per_s=default_rate,
    )


async def refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


@pytest.mark.parametrize("token", [None, "", "x" * (MAX_PRESENTED_CHARS + 1)])
async def test_missing_or_overlong_tokens_are_refused_without_a_lookup(token: str | None) -> None:
    keys = CountingKeys({})
    error = await refused(authenticator(keys).key_of(token))
    assert error.status == 401
    assert error.headers == {"WWW-Authenticate": "Bearer"}
    assert keys.lookups == []


async def test_a_token_of_the_longest_allowed_length_is_looked_up() -> None:
    token = "x" * MAX_PRESENTED_CHARS
    keys = CountingKeys({token: key()})
    assert (await authenticator(keys).key_of(token)).key_id == "k1"


async def test_verified_keys_are_reused_until_cache_s_has_passed(clock: Clock) -> None:
    keys = CountingKeys({"good": key()})
    auth = authenticator(keys, cache_s=5.0)
    assert (await auth.key_of("good")).key_id == "k1"
    clock.now += 4.999
    await auth.key_of("good")
    assert keys.lookups == ["good"]
    clock.now += 0.001  # exactly cache_s after the lookup: stale
    await auth.key_of("good")
    assert keys.lookups == ["good", "good"]
    clock.now += 7.25  # and long after
    await auth.key_of("good")
    assert keys.lookups == ["good", "good", "good"]


async def test_refusals_are_cached_too_and_a_revoked_key_fails_once_expired(clock: Clock) -> None:
    keys = CountingKeys({"good": key()})
    auth = authenticator(keys, cache_s=5.0)
    for _ in range(3):
        assert (await refused(auth.key_of("bad"))).status == 401
    assert keys.lookups == ["bad"]
    await auth.key_of("good")
    del keys.table["good"]  # revoked
    await auth.key_of("good")  # still within cache_s
    clock.now += 5.0
    assert (await refused(auth.key_of("good"))).status == 401


async def test_the_cache_keeps_hashes_not_secrets_and_is_bounded_least_recently_used(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(auth_module, "MAX_CACHED", 3)
    keys = CountingKeys({f"t{i}": key(f"k{i}") for i in range(5)})
    auth = authenticator(keys)
    for token in ("t0", "t1", "t2"):
        await auth.key_of(token)
    await auth.key_of("t0")  # used again: t1 is now the least recently used
    await auth.key_of("t3")
    cached = list(auth._verified)
    assert len(cached) == 3
    assert cached == [hashlib.sha256(t.encode()).hexdigest() for t in ("t2", "t0", "t3")]
    assert not any(token in cached for token in keys.table)
    await auth.key_of("t0")
    await auth.key_of("t1")  # evicted: looked up again
    assert keys.lookups == ["t0", "t1", "t2", "t3", "t1"]


async def test_admin_routes_refuse_a_key_without_the_right_before_its_rate_is_taken() -> None:
    limiter = ScriptedLimiter()
    keys = CountingKeys({"user": key(rate=3.0), "admin": key("a1", admin=True, rate=3.0)})
    auth = authenticator(keys, limiter)
    error = await refused(auth.admit("user", admin=True))
    assert (error.status, error.detail.code) == (403, "forbidden")
    assert limiter.taken == []
    assert (await auth.admit("admin", admin=True)).key_id == "a1"
    assert (await auth.admit("user")).key_id == "k1"
    assert limiter.taken == [("a1", 3.0), ("k1", 3.0)]


async def test_a_keys_own_rate_wins_over_the_default_and_no_rate_takes_nothing() -> None:
    limiter = ScriptedLimiter()
    keys = CountingKeys({"own": key("own", rate=2.0), "none": key("none")})
    await authenticator(keys, limiter, default_rate=20.0).admit("own")
    await authenticator(keys, limiter, default_rate=20.0).admit("none")
    assert limiter.taken == [("own", 2.0), ("none", 20.0)]
    await authenticator(keys, limiter, default_rate=None).admit("none")
    assert len(limiter.taken) == 2


@pytest.mark.parametrize(("wait_s", "retry_after"), [(0.2, "1"), (1.0, "1"), (2.5, "3")])
async def test_a_bucket_with_no_token_is_429_with_the_wait(wait_s: float, retry_after: str) -> None:
    auth = authenticator(CountingKeys({"k": key(rate=4.0)}), ScriptedLimiter(wait_s))
    error = await refused(auth.admit("k"))
    assert error.status == 429
    assert error.headers == {"Retry-After": retry_after}
    assert "4 requests/s" in error.detail.message


def test_a_scope_bound_key_searches_only_within_its_scope() -> None:
    bound = key(scope=("CN/山东",))
    assert searched_scope(bound, (), False) == (("CN/山东",), False)
    assert searched_scope(bound, ("cn/山东",), False) == (("cn/山东",), False)
    for named, anywhere in ((("CN/北京",), False), ((), True), (("CN/山东", "US"), False)):
        with pytest.raises(ApiError) as caught:
            searched_scope(bound, named, anywhere)
        assert caught.value.status == 403


@pytest.mark.parametrize("free", [key(scope=("CN/山东",), admin=True), key()])
def test_admin_and_unscoped_keys_take_the_scope_as_a_default(free: ApiKey) -> None:
    assert searched_scope(free, ("US",), True) == (("US",), True)
    assert searched_scope(free, (), False) == (free.default_scope, False)


class RecordingApp:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)


async def call(middleware: Authenticated, path: str, token: str | None,
               kind: str = "http", method: str = "GET") -> list[dict[str, Any]]:  # fmt: skip
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope = {"type": kind, "path": path, "method": method, "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    async def send(message: Any) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


async def test_the_middleware_answers_refusals_itself_and_hands_on_verified_keys() -> None:
    app = RecordingApp()
    keys = CountingKeys({"user": key(), "admin": key("a1", admin=True)})
    middleware = Authenticated(app, authenticator(keys))
    sent = await call(middleware, "/v1/models", None)
    assert sent[0]["status"] == 401
    sent = await call(middleware, "/v1/rules", "user")
    assert sent[0]["status"] == 403
    assert app.scopes == []
    assert await call(middleware, "/v1/rules", "admin") == []
    assert app.scopes[-1]["state"][STATE_KEY].key_id == "a1"
    # Health, metrics and non-HTTP traffic pass without a key.
    assert await call(middleware, "/health", None) == []
    assert await call(middleware, "/v1/models", None, kind="lifespan") == []
    assert len(app.scopes) == 3
    assert "state" not in app.scopes[-1]


def test_a_refusal_quotes_a_hostile_name_and_scope_only_up_to_their_bounds() -> None:
    labels = tuple(f"R{i:02d}/" + "x" * 40 for i in range(12))  # 12 x 44 characters
    bound = key(scope=labels)
    scope = ", ".join(labels)
    with pytest.raises(ApiError) as outside:
        searched_scope(bound, ("Z" * 500,), False)
    message = outside.value.detail.message
    assert repr("Z" * 80) in message
    assert f"({scope[:300]})" in message
    with pytest.raises(ApiError) as anywhere:
        searched_scope(bound, (), True)
    assert f"({scope[:300]}):" in anywhere.value.detail.message


async def test_the_cache_holds_exactly_max_cached_tokens() -> None:
    tokens = [f"t{i}" for i in range(auth_module.MAX_CACHED + 1)]
    auth = authenticator(CountingKeys({}))
    for token in tokens:
        with pytest.raises(ApiError):
            await auth.key_of(token)
    assert len(auth._verified) == auth_module.MAX_CACHED == 10_000


def test_the_first_outside_name_is_the_one_quoted() -> None:
    with pytest.raises(ApiError) as outside:
        searched_scope(key(scope=("CN",)), ("first-outside", "second-outside"), False)
    assert "'first-outside'" in outside.value.detail.message
