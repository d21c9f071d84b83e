"""auth — accounts, passwords, sessions and tokens.

Tables (schema `auth`): credentials, sessions, spent_refresh_tokens, password_resets.
Publishes: `auth.user_registered.v1` (UserRegistered), `auth.sessions_revoked.v1`.
Listens: `users.user_deleted.v1` (removes credentials and sessions, inbox),
`auth.sessions_revoked.v1` (marks sessions revoked in Redis, disconnects their sockets); both
inline, so a deleted account's or a signed-out session's tokens are refused once the request
returns.
Asks: GetProfiles (users: the account view at sign-in).
Answers: AuthenticateAccessToken, VerifyPassword, ActiveSessions (from PostgreSQL).
Tasks: `auth.send_password_reset` (queue `email`; arguments: user id and request id only: the
worker makes the token, so no secret sits in the broker or its dead letters).
"""

from __future__ import annotations

import uuid

from litestar import Router
from litestar.di import Provide

from src.common.queries.auth import ActiveSessions, AuthenticateAccessToken, VerifyPassword
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.auth.actors import TASKS
from src.modules.auth.controller import AuthController
from src.modules.auth.listeners import register_listeners
from src.modules.auth.service import AuthService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the auth service, its query handlers, listeners and routes."""
    service = AuthService(ctx)

    async def authenticate(query: AuthenticateAccessToken):  # type: ignore[no-untyped-def]
        return await service.authenticate(query.token, socket=query.socket)

    async def verify_password(query: VerifyPassword) -> bool:
        return await service.verify_user_password(query.user_id, query.password)

    ctx.queries.register(AuthenticateAccessToken, authenticate)
    async def active_sessions(query: ActiveSessions) -> set[uuid.UUID]:
        return await service.status.active_in_db(query.session_ids)

    ctx.queries.register(VerifyPassword, verify_password)
    ctx.queries.register(ActiveSessions, active_sessions)
    register_listeners(ctx, service)
    router = Router(path="/", route_handlers=[AuthController],
                    dependencies={"auth_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router], on_startup=[service.status.start],
                       on_shutdown=[service.status.stop])


module = Module(name="auth", build=build, tasks=TASKS)
