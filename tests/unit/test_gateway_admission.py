"""What the gateway checks before it spends anything on a request: open-request caps per
instance, tenant and key; which routes need an admin key; the bearer token; hostile names."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.gateway.authenticated import bearer_token, needs_admin
from services.gateway.capacity import OpenLimits, OpenRequests
from services.gateway.errors import ApiError
from services.gateway.settings import GatewaySettings
from shared.errors import Hinted
from shared.tenants import ApiKey, ApiKeys
from shared.topics import TopicNames


def key(key_id: str, tenant: str) -> ApiKey:
    return ApiKey(key_id=key_id, tenant=tenant, admin=False, label="", default_scope=(),
                  rate_limit_per_s=None, created_at=0.0, revoked_at=None)  # fmt: skip


def test_derived_limits_leave_room_for_other_tenants_and_keys() -> None:
    assert OpenLimits.derived(256, None, None) == OpenLimits(256, 192, 96)
    assert OpenLimits.derived(8, 4, None) == OpenLimits(8, 4, 2)
    assert OpenLimits.derived(1, None, None) == OpenLimits(1, 1, 1)
    assert OpenLimits.derived(4, 2, None) == OpenLimits(4, 2, 1)  # half of 2, at least 1
    per_key = OpenLimits.derived(10, 5, None).per_key
    assert (per_key, type(per_key)) == (2, int)  # whole requests
    # A configured cap never exceeds the one above it.
    assert OpenLimits.derived(10, 50, 70) == OpenLimits(10, 10, 10)


def test_open_requests_refuse_at_each_bound_and_forget_what_closed() -> None:
    open_requests = OpenRequests(OpenLimits(total=4, per_tenant=3, per_key=2))
    a1, a2, b1 = key("a1", "acme"), key("a2", "acme"), key("b1", "beta")
    with open_requests.admitted(a1), open_requests.admitted(a1):
        with pytest.raises(ApiError, match="API key") as by_key, open_requests.admitted(a1):
            pass
        assert by_key.value.status == 429
        assert by_key.value.headers["Retry-After"] == "1"
        with open_requests.admitted(a2):
            with pytest.raises(ApiError, match="tenant") as by_tenant, open_requests.admitted(a2):
                pass
            assert by_tenant.value.headers["Retry-After"] == "1"
            with open_requests.admitted(b1):
                assert open_requests.total == 4
                with pytest.raises(ApiError, match="instance") as by_total, \
                        open_requests.admitted(b1):  # fmt: skip
                    pass
                assert by_total.value.headers["Retry-After"] == "1"
        assert open_requests.of_tenant("acme") == 2
    assert open_requests.total == 0
    assert open_requests.of_tenant("acme") == 0
    assert open_requests.of_key("a1") == 0
    assert not open_requests._tenants  # no entry outlives its requests
    assert not open_requests._keys


def test_an_error_inside_the_request_still_closes_it() -> None:
    open_requests = OpenRequests(OpenLimits(2, 2, 2))
    with pytest.raises(LookupError, match="boom"), open_requests.admitted(key("a", "t")):
        raise LookupError("boom")
    assert open_requests.total == 0


@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("GET", "/v1/rules", True),
        ("GET", "/v1/rules/refunds", True),
        ("PUT", "/v1/rules/refunds", True),
        ("DELETE", "/v1/rules/refunds", True),
        ("POST", "/v1/rules/applicable", False),
        ("GET", "/v1/rules/applicable", True),  # only the check itself is open to any key
        ("POST", "/v1/chat/completions", False),
        ("GET", "/v1/models", False),
        ("GET", "/v1/rulesets", False),
    ],
)
def test_which_routes_need_an_admin_key(method: str, path: str, admin: bool) -> None:
    assert needs_admin(method, path) is admin


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer ask_1", "ask_1"),
        (b"bearer   ask_1  ", "ask_1"),
        (b"Basic dXNlcjpwYXNz", None),
        (b"Token ask_1", None),
        (b"Bearer ", None),
        (b"ask_1", None),
    ],
)
def test_bearer_token(header: bytes, token: str | None) -> None:
    headers = [(b"accept", b"Bearer not-a-key"), (b"x-other", b"1"), (b"authorization", header)]
    assert bearer_token({"headers": headers}) == token


def test_no_authorization_header_is_no_token() -> None:
    assert bearer_token({"headers": []}) is None


def test_names_with_a_trailing_newline_are_not_names() -> None:
    topics = TopicNames("p.")
    assert topics.reply_allowed("p.replies.gw-1")
    assert not topics.reply_allowed("p.replies.gw-1\n")
    assert not topics.reply_allowed("p.chat.responses\n")
    with pytest.raises(ValueError, match="letters"):
        GatewaySettings(instance="gw-1\n")


async def test_tenants_and_keys_with_a_trailing_newline_are_refused_before_any_lookup() -> None:
    keys = ApiKeys(aioredis.Redis(port=1), "p")  # never connected: no lookup may happen
    with pytest.raises(Hinted, match="not a tenant id"):
        await keys.create("acme\n")
    assert await keys.verify("ask_0123456789ab_" + "x" * 43 + "\n") is None
