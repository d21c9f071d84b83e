"""What auth does when other modules' events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.auth import SessionsRevoked
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.auth.service import AuthService


def register_listeners(ctx: AppContext, service: AuthService) -> None:
    """Subscribe auth's listeners to the bus."""

    async def remove_credentials_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        await service.forget_user(tx, event.user_id)

    async def refuse_revoked_sessions(event: SessionsRevoked) -> None:
        # Idempotent by nature: writing "revoked" and disconnecting twice change nothing.
        await service.status.mark_revoked(event.session_ids)
        await ctx.realtime.revoke_sessions(event.session_ids)

    # Inline (a few statements, one Redis write): from the moment DELETE /users/me or a sign-out
    # returns, the account's tokens and password are refused.
    ctx.bus.subscribe(UserDeleted, "auth.remove_credentials_on_user_deleted", remove_credentials_on_user_deleted,
                      inline=True)
    ctx.bus.subscribe_idempotent(SessionsRevoked, "auth.refuse_revoked_sessions", refuse_revoked_sessions,
                                 inline=True)
