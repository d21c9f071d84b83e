"""Every failure as RFC 9457 problem details with a stable `code`."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Send
from sqlalchemy import exc as sa_exc

from src.common.errors import AppError
from src.infra.admission import is_overload
from src.infra.redis import REDIS_ERRORS

log = structlog.get_logger("chatty.http")
PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: ("bad_request", "Bad request"), 401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"), 404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"), 409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"), 415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"), 431: ("headers_too_large", "Request headers too large"),
    503: ("unavailable", "Service unavailable"),
}


def problem(status: int, code: str, title: str, detail: str, *, field: str | None = None,
            headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> Response[dict[str, Any]]:
    """A problem-details response."""
    body: dict[str, Any] = {**(extra or {}), "type": f"https://chatty.dev/problems/{code}", "title": title,
                            "status": status, "detail": detail, "code": code}
    if field:
        body["field"] = field
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def send_problem(send: Send, status: int, code: str, detail: str, field: str | None,
                       headers: dict[str, str] | None = None) -> None:
    """Answer with a problem straight from ASGI middleware (before Litestar routes the request)."""
    title = _CODES.get(status, ("", "Bad request"))[1]
    body: dict[str, Any] = {"type": f"https://chatty.dev/problems/{code}", "title": title,
                            "status": status, "detail": detail, "code": code}
    if field:
        body["field"] = field
    payload = msgspec.json.encode(body)
    raw = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(payload)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": payload, "more_body": False}
    await send(end)


# A dependency that is away for a moment (a restart, a failover): the client should retry.
RETRY_AFTER_SECONDS = "5"
_TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError, asyncpg.InterfaceError, ConnectionError, *REDIS_ERRORS)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _TRANSIENT)


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
    """Anything unexpected: logged with its traceback, a bland 500 to the client; a database or
    Redis outage is a 503 with Retry-After, a value PostgreSQL refuses (out of range) a 400."""
    if is_overload(exc):  # no pooled connection came free in time: busy, not broken
        return problem(503, "overloaded", "Service unavailable", "The server is busy, try again shortly",
                       headers={"Retry-After": "1"})
    if _transient(exc):
        log.warning("http.dependency_unavailable", path=request.url.path, error=repr(exc))
        return problem(503, "unavailable", "Service unavailable",
                       "A backing service is unavailable, try again shortly",
                       headers={"Retry-After": RETRY_AFTER_SECONDS})
    if isinstance(exc, sa_exc.DataError):
        log.warning("http.data_error", path=request.url.path, error=repr(exc.orig))
        return problem(400, "validation_failed", "Invalid input", "a value is out of range or not valid text")
    log.exception("http.unhandled", path=request.url.path, error=repr(exc))
    return problem(500, "internal_error", "Internal error", "Something went wrong on our side")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AppError: app_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
