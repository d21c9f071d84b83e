"""Query handlers of messaging: conversation membership for other modules (calls)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from src.common.queries.messaging import ConversationMemberIds, IsConversationMember
from src.infra.context import AppContext
from src.modules.messaging.access import reader
from src.modules.messaging.models import members


def register_queries(ctx: AppContext) -> None:
    """Answer IsConversationMember and ConversationMemberIds from `messaging.members`."""

    async def is_member(query: IsConversationMember) -> bool:
        async with reader(ctx).connect() as conn:
            found = await conn.scalar(select(members.c.user_id).where(
                members.c.conversation_id == query.conversation_id, members.c.user_id == query.user_id))
        return found is not None

    async def member_ids(query: ConversationMemberIds) -> list[uuid.UUID]:
        async with reader(ctx).connect() as conn:
            rows = await conn.scalars(select(members.c.user_id).where(
                members.c.conversation_id == query.conversation_id).order_by(members.c.joined_at, members.c.user_id))
        return list(rows.all())

    ctx.queries.register(IsConversationMember, is_member)
    ctx.queries.register(ConversationMemberIds, member_ids)
