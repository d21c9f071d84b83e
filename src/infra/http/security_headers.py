"""Response hardening and the request header size limit, for every HTTP response."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from src.infra.http.problems import send_problem

# JSON is data, never a document: no script, style, frame or plugin may come from it.
JSON_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_JSON_TYPES = (b"application/json", b"application/problem+json")


def security_headers(max_header_bytes: int) -> Any:
    """ASGI middleware factory: 431 for oversized request headers; `nosniff` on every response and a
    strict CSP on JSON ones (the OpenAPI viewer pages keep theirs)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def secure(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if sum(len(k) + len(v) for k, v in scope["headers"]) > max_header_bytes:
                await send_problem(send, 431, "headers_too_large",
                                   f"the request headers are larger than {max_header_bytes} bytes", None)
                return

            async def send_secured(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                    if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                        headers.append((b"x-content-type-options", b"nosniff"))
                    if content_type.startswith(_JSON_TYPES):
                        headers.append((b"content-security-policy", JSON_CSP))
                    message["headers"] = headers
                await send(message)

            await app(scope, receive, send_secured)

        return secure

    return middleware
