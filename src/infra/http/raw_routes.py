"""Hot routes answered straight from ASGI, inside the middleware stack, past Litestar's handler layers.

For a route whose handler is cheap, Litestar's per-request work around it (parsing the signature,
resolving dependencies, building the `Response` and its ASGI response) costs as much as the handler.
A route handler may name in its `opt` (`RAW_ASGI`) a function that answers the common case itself:
`await raw(scope, send)` returns True once it has sent the whole response, or False, having sent
nothing, for anything unusual (a parameter it does not parse itself, a failed authentication, an
error), which Litestar then answers as usual (the same status and problem body as always). Every
middleware (admission, security headers, request id, metrics) still wraps both paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

RAW_ASGI = "raw_asgi"
RawHandler = Callable[[Scope, Send], Awaitable[bool]]
_JSON = b"application/json"


def raw_routes(app: ASGIApp) -> ASGIApp:
    """ASGI middleware (the innermost of the app's list): try the route's raw handler first."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        handler: Any = scope.get("route_handler")
        raw: RawHandler | None = handler.opt.get(RAW_ASGI) if handler is not None else None
        if raw is not None and scope["type"] == "http" and await raw(scope, send):
            return
        await app(scope, receive, send)

    return middleware


async def send_json(send: Send, body: bytes) -> None:
    """A 200 with this JSON body, as Litestar sends a `Response(body, media_type=MediaType.JSON)`."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def dependency_value(scope: Scope, name: str) -> Any:
    """The value of the route's dependency `name` (a constant `Provide(lambda: value)`)."""
    return scope["route_handler"].resolve_dependencies()[name].dependency()  # type: ignore[typeddict-item]
