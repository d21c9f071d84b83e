"""What users does when other modules' events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.follows import FollowCreated, FollowDeleted, UserFollowsRemoved
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.users.service import UsersService


def register_listeners(ctx: AppContext, service: UsersService) -> None:
    """Subscribe the users listeners (inbox: each event changes the counters once)."""

    async def count_follow_created(tx: UnitOfWork, event: FollowCreated) -> None:
        await service.apply_follow_delta(tx, event.follower_id, event.followee_id, +1)

    async def count_follow_deleted(tx: UnitOfWork, event: FollowDeleted) -> None:
        await service.apply_follow_delta(tx, event.follower_id, event.followee_id, -1)

    async def count_user_follows_removed(tx: UnitOfWork, event: UserFollowsRemoved) -> None:
        await service.drop_follow_counts(tx, event.follower_ids, event.followee_ids)

    # Inline (two single-row updates): the follower reads their own counts right after (un)following.
    ctx.bus.subscribe(FollowCreated, "users.count_follow_created", count_follow_created, inline=True)
    ctx.bus.subscribe(FollowDeleted, "users.count_follow_deleted", count_follow_deleted, inline=True)
    # In a worker: a deleted account's edges may be thousands of rows.
    ctx.bus.subscribe(UserFollowsRemoved, "users.count_user_follows_removed", count_user_follows_removed,
                      worker=True)
