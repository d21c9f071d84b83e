"""Per-request context: a request id on every log line and on the response."""

from __future__ import annotations

import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Bind `request_id` (from `X-Request-ID` or new) for logs and echo it back."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = incoming or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware
