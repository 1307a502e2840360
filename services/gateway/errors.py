"""Errors as OpenAI's API returns them: a status code and ``{"error": {message, type, param,
code}}``, which the ``openai`` client raises as its typed exceptions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse

from services.gateway.protocol import ErrorBody, ErrorDetail
from shared.events import ErrorKind
from shared.validation_text import Problem, describe


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message[:2000], type=type, code=code, param=param)
        self.headers = headers or {}

    @property
    def body(self) -> ErrorBody:
        return ErrorBody(error=self.detail)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body.model_dump(), status_code=error.status, headers=error.headers)


def invalid(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """400 for pydantic's validation errors (of a body, or of an event built from one): the
    first one's dotted path (without FastAPI's leading ``body``) and what it must be."""
    problem = describe(errors[0]) if errors else Problem("", "invalid body")
    return ApiError(400, problem.line(), param=problem.where or None)


def unauthorized() -> ApiError:
    # One answer for no key, a bad key and a revoked key: nothing to probe.
    return ApiError(401, "Missing or invalid API key (Authorization: Bearer ask_...).",
                    code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, type="permission_error", code="forbidden")


def rate_limited(retry_after_s: float, message: str) -> ApiError:
    seconds = max(1, int(retry_after_s + 0.999))
    return ApiError(429, message, type="rate_limit_error", code="rate_limit_exceeded",
                    headers={"Retry-After": str(seconds)})  # fmt: skip


def unsupported(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="unsupported_parameter", param=param)


def timed_out(seconds: float) -> ApiError:
    return ApiError(504, f"No answer within {seconds:g} s.", type="timeout_error",
                    code="timeout")  # fmt: skip


_PIPELINE_STATUS: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.INVALID_REQUEST: (400, "invalid_request_error"),
    ErrorKind.TIMEOUT: (504, "timeout_error"),
    ErrorKind.OVERLOADED: (503, "overloaded_error"),
    ErrorKind.BACKEND: (502, "upstream_error"),
    ErrorKind.CANCELLED: (499, "cancelled_error"),
}


def from_pipeline(kind: ErrorKind, message: str) -> ApiError:
    """The pipeline's error response as an HTTP error."""
    status, type_ = _PIPELINE_STATUS[kind]
    return ApiError(status, message, type=type_, code=kind.value)
