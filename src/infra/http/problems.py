"""Every failure as RFC 9457 problem details with a stable `code`."""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from src.common.errors import AppError

log = structlog.get_logger("chatty.http")
PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: ("bad_request", "Bad request"), 401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"), 404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"), 409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"), 415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"), 503: ("unavailable", "Service unavailable"),
}


def problem(status: int, code: str, title: str, detail: str, *, field: str | None = None,
            headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> Response[dict[str, Any]]:
    """A problem-details response."""
    body: dict[str, Any] = {**(extra or {}), "type": f"https://chatty.dev/problems/{code}", "title": title,
                            "status": status, "detail": detail, "code": code}
    if field:
        body["field"] = field
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def app_error_handler(_: Request, exc: AppError) -> Response[dict[str, Any]]:
    """Our own errors carry their status and code."""
    return problem(exc.status, exc.code, exc.title, exc.detail, field=exc.field, headers=exc.headers,
                   extra=exc.extra)


def validation_handler(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    """Framework validation (body, query, path): name the first offending field."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    field = first.get("key") or None
    message = first.get("message") or exc.detail
    # msgspec reports a missing or unknown body field on the body itself ("data"): name the field.
    if named := re.search(r"(?:missing required|unknown) field `([^`]+)`", str(message)):
        field = named.group(1) if field in (None, "data") else f"{field}.{named.group(1)}"
    detail = f"{field}: {message}" if field else str(message)
    return problem(400, "validation_failed", "Invalid input", detail, field=field)


def http_error_handler(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    """Framework HTTP errors (unknown route, wrong method, oversize body …)."""
    code, title = _CODES.get(exc.status_code, ("http_error", "HTTP error"))
    if exc.status_code == 404:
        code = "route_not_found"
    headers = dict(exc.headers or {})
    return problem(exc.status_code, code, title, str(exc.detail), headers=headers)


def internal_error_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """Anything unexpected: logged with its traceback, a bland 500 to the client."""
    log.exception("http.unhandled", path=request.url.path, error=repr(exc))
    return problem(500, "internal_error", "Internal error", "Something went wrong on our side")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AppError: app_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
