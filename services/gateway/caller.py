"""The verified key of a request, as routes take it, and the error answers every route
documents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.protocol import ErrorBody
from shared.tenants import ApiKey

_BEARER = HTTPBearer(auto_error=False, description="An API key: alignstream tenants create-key")


async def _caller(
    request: Request, _: HTTPAuthorizationCredentials | None = Depends(_BEARER)
) -> ApiKey:
    # Verified by ``Authenticated`` before the body was read; the bearer scheme is declared
    # here for the API's documentation. async: a plain function would run in a thread.
    key: ApiKey = request.state.api_key
    return key


Caller = Annotated[ApiKey, Depends(_caller)]
"""The request's verified API key."""
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in ((400, "Invalid request"), (401, "Missing or invalid API key"),
                         (429, "Rate limit or in-flight limit reached"),
                         (504, "No answer in time"))
}  # fmt: skip
