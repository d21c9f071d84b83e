"""What calls does when events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.blocks import UserBlocked
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.calls.service import CallService


def register_listeners(ctx: AppContext, service: CallService) -> None:
    """Subscribe the calls listeners to the bus."""

    # Idempotent by nature: hanging up a call one already left does nothing.
    async def end_call_on_block(event: UserBlocked) -> None:
        await service.end_calls_of(event.blocker_id, with_user=event.blocked_id)

    async def forget_user_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        await service.end_calls_of(event.user_id)
        await service.history.forget_user(tx, event.user_id)

    ctx.bus.subscribe_idempotent(UserBlocked, "calls.end_call_on_block", end_call_on_block)
    ctx.bus.subscribe(UserDeleted, "calls.forget_user_on_user_deleted", forget_user_on_user_deleted,
                      worker=True)
