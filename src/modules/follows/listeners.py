"""What follows does when events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.blocks import UserBlocked
from src.common.events.follows import FollowCreated
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.follows.service import FollowsService


def register_listeners(ctx: AppContext, service: FollowsService) -> None:
    """Subscribe the follows listeners to the bus."""

    async def remove_follows_on_block(tx: UnitOfWork, event: UserBlocked) -> None:
        await service.remove_between(tx, event.blocker_id, event.blocked_id, reason="blocked")

    async def remove_follows_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        await service.remove_user(tx, event.user_id)

    async def notify_followee(event: FollowCreated) -> None:
        # Idempotent by nature: a socket emit is a hint; a replay re-sends the same list entry,
        # and nothing is sent once the edge is gone.
        item = await service.follow_item(event.follower_id, event.followee_id)
        if item is not None:
            await ctx.realtime.emit_to_users("follow:new", item, [event.followee_id])

    ctx.bus.subscribe(UserBlocked, "follows.remove_follows_on_block", remove_follows_on_block)
    ctx.bus.subscribe(UserDeleted, "follows.remove_follows_on_user_deleted", remove_follows_on_user_deleted,
                      worker=True)
    ctx.bus.subscribe_idempotent(FollowCreated, "follows.notify_followee", notify_followee)
