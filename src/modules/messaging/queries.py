"""Answers to other modules' questions about conversations."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from src.common.queries.messaging import ConversationMemberIds, IsConversationMember
from src.infra.context import AppContext
from src.modules.messaging.access import reader
from src.modules.messaging.models import members


def register_queries(ctx: AppContext) -> None:
    """Answer IsConversationMember and ConversationMemberIds."""
    read = reader(ctx)

    async def is_member(query: IsConversationMember) -> bool:
        async with read.connect() as conn:
            found = await conn.scalar(select(members.c.user_id).where(
                members.c.conversation_id == query.conversation_id, members.c.user_id == query.user_id))
        return found is not None

    async def member_ids(query: ConversationMemberIds) -> list[uuid.UUID]:
        async with read.connect() as conn:
            return list((await conn.scalars(select(members.c.user_id).where(
                members.c.conversation_id == query.conversation_id))).all())

    ctx.queries.register(IsConversationMember, is_member)
    ctx.queries.register(ConversationMemberIds, member_ids)
