"""What blocks does when events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.blocks import UserBlocked, UserUnblocked
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.blocks.schemas import BlockChanged
from src.modules.blocks.service import BlocksService

BLOCK_CHANGED = "block:changed"


def register_listeners(ctx: AppContext, service: BlocksService) -> None:
    """Subscribe the blocks listeners to the bus."""

    async def remove_blocks_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        await service.forget_user(tx, event.user_id)

    async def tell_blocker_devices_on_blocked(event: UserBlocked) -> None:
        # Idempotent by nature: a socket emit is a hint; the list (GET /blocks) is the truth.
        # Only the blocker's own devices hear it: the blocked user is never told.
        await ctx.realtime.emit_to_users(
            BLOCK_CHANGED, BlockChanged(user_id=str(event.blocked_id), blocked=True), [event.blocker_id])

    async def tell_blocker_devices_on_unblocked(event: UserUnblocked) -> None:
        # Idempotent by nature, as above.
        await ctx.realtime.emit_to_users(
            BLOCK_CHANGED, BlockChanged(user_id=str(event.blocked_id), blocked=False), [event.blocker_id])

    ctx.bus.subscribe(UserDeleted, "blocks.remove_blocks_on_user_deleted", remove_blocks_on_user_deleted,
                      worker=True)
    ctx.bus.subscribe_idempotent(UserBlocked, "blocks.tell_blocker_devices_on_blocked",
                                 tell_blocker_devices_on_blocked)
    ctx.bus.subscribe_idempotent(UserUnblocked, "blocks.tell_blocker_devices_on_unblocked",
                                 tell_blocker_devices_on_unblocked)
