"""The API key checked before anything else is spent on a request.

FastAPI reads and validates a body before it resolves a route's dependencies, so a key checked
in a route comes after the body: anyone without a key could make the gateway read and parse
up to ``max_body_bytes`` per request. ``Authenticated`` is an ASGI middleware in front of the
app: every ``/v1/`` request's bearer key is verified (and its rate limit taken, and its admin
right checked where the route needs one) from the headers alone; a refused request is answered
without its body being read. Routes read the verified key from the request's state
(``api_key``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.auth import Authenticator
from services.gateway.errors import ApiError, error_response

API_PREFIX = "/v1/"
RULES = "/v1/rules"
OPEN_TO_ANY_KEY = {("POST", "/v1/rules/applicable")}
"""Routes under ``/v1/rules`` that a key without the admin right may call."""
STATE_KEY = "api_key"


def needs_admin(method: str, path: str) -> bool:
    """The rules API manages a tenant's memory: admin keys only (but its check endpoint)."""
    under_rules = path == RULES or path.startswith(RULES + "/")
    return under_rules and (method, path) not in OPEN_TO_ANY_KEY


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header (None: none, or another scheme)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


class Authenticated:
    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            admin = needs_admin(scope["method"], scope["path"])
            key = await self.auth.admit(bearer_token(scope), admin=admin)
        except ApiError as error:
            await error_response(error)(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = key
        await self.app(scope, receive, send)
