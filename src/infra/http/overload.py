"""HTTP requests through the process's admission control: 503 `overloaded` with Retry-After at once
when the process cannot take more (src/infra/admission.py). Health, metrics and the schema are
always served: an operator must be able to see a busy process."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from src.infra.admission import Admission
from src.infra.http.problems import send_problem

EXEMPT_PREFIXES = ("/health", "/metrics", "/schema")
OVERLOADED_DETAIL = "The server is busy, try again shortly"


def admission_guard(admission: Admission) -> Any:
    """ASGI middleware factory (Litestar `middleware=[...]`): admit each HTTP request or refuse it."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
                await app(scope, receive, send)
                return
            ticket = admission.enter("http")
            if ticket is None:
                await send_problem(send, 503, "overloaded", OVERLOADED_DETAIL, None,
                                   headers={"Retry-After": str(admission.retry_after)})
                return
            try:
                await app(scope, receive, send)
            finally:
                admission.leave(ticket)

        return guard

    return middleware
