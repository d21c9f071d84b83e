"""The `principal` dependency: the caller behind `Authorization: Bearer <access token>`."""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from litestar import Request
from litestar.types import Scope

from src.common.auth import Principal
from src.common.errors import Unauthorized
from src.common.queries.auth import AuthenticateAccessToken
from src.infra.context import AppContext


def _authorization(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The Authorization header, read from the ASGI scope: building Litestar's case-insensitive
    `Headers` for it cost about a third of the whole token check (a remembered session)."""
    for name, value in headers:
        if len(name) == 13 and name.lower() == b"authorization":
            return value.decode("latin-1")
    return ""


async def current_principal(request: Request) -> Principal:
    """Authenticate the request; 401 when the token is missing, invalid or revoked."""
    return await principal_of(request.scope)


async def principal_of(scope: Scope) -> Principal:
    """`current_principal` from the ASGI scope of a routed request (raw_routes.py)."""
    header = _authorization(scope["headers"])
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("A bearer access token is required", code="unauthorized")
    ctx: AppContext = scope["app"].state.ctx
    principal = await ctx.queries.ask(AuthenticateAccessToken(token=token.strip()))
    if principal is None:
        raise Unauthorized("The access token is invalid, expired or revoked", code="invalid_token")
    structlog.contextvars.bind_contextvars(user_id=str(principal.user_id))
    return principal


async def optional_principal(request: Request) -> Principal | None:
    """The caller when a bearer token is sent (401 when it is bad), None when signed out."""
    if not _authorization(request.scope["headers"]):
        return None
    return await current_principal(request)
