"""Application errors: each maps to a problem-details response with a stable `code`."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure the client should see: HTTP status, stable code, human detail, maybe a field."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}  # more members of the problem body (e.g. the `limit` that was hit)
        if code:
            self.code = code


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad request"


class ValidationFailed(AppError):
    status, code, title = 400, "validation_failed", "Invalid input"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(AppError):
    status, code, title = 503, "unavailable", "Service unavailable"


class Overloaded(AppError):
    """The process is too busy to take this now (admission control): retry after `retry_after` s."""

    status, code, title = 503, "overloaded", "Service unavailable"

    def __init__(self, detail: str = "The server is busy, try again shortly", *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)
