"""What friendship does when events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.blocks import UserBlocked
from src.common.events.friendship import FriendRequestSent, FriendshipAccepted
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.friendship.service import FriendshipService


def register_listeners(ctx: AppContext, service: FriendshipService) -> None:
    """Subscribe the friendship listeners to the bus."""

    async def remove_friendship_on_block(tx: UnitOfWork, event: UserBlocked) -> None:
        await service.remove_pair(tx, event.blocker_id, event.blocked_id, reason="blocked")

    async def remove_friendships_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        await service.remove_user(tx, event.user_id)

    async def notify_request_recipient(event: FriendRequestSent) -> None:
        # Idempotent by nature: an emit is a hint; a replay re-sends the same request, and
        # nothing is sent once it was resolved.
        view = await service.pending_request(event.request_id)
        if view is not None:
            await ctx.realtime.emit_to_users("friend:request", view, [event.to_user_id])

    async def notify_friendship_accepted(event: FriendshipAccepted) -> None:
        # Idempotent by nature (a hint, as above). Every socket of both users: the accepter's
        # other devices learn it too (REST calls have no socket to skip).
        for user_id, payload in (await service.accepted_payloads(event)).items():
            await ctx.realtime.emit_to_users("friend:accepted", payload, [user_id])

    ctx.bus.subscribe(UserBlocked, "friendship.remove_friendship_on_block", remove_friendship_on_block)
    ctx.bus.subscribe(UserDeleted, "friendship.remove_friendships_on_user_deleted",
                      remove_friendships_on_user_deleted, worker=True)
    ctx.bus.subscribe_idempotent(FriendRequestSent, "friendship.notify_request_recipient",
                                 notify_request_recipient)
    ctx.bus.subscribe_idempotent(FriendshipAccepted, "friendship.notify_friendship_accepted",
                                 notify_friendship_accepted)
