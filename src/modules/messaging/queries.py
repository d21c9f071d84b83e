"""Answers messaging gives other modules: membership of conversations, people sharing one."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from src.common.queries.messaging import (
    ConversationMemberIds,
    ConversationPeerIds,
    ConversationPeerIdsOfMany,
    IsConversationMember,
)
from src.infra.context import AppContext
from src.modules.messaging.access import reader
from src.modules.messaging.models import members


def register_queries(ctx: AppContext) -> None:
    """Register IsConversationMember, ConversationMemberIds, ConversationPeerIds and ConversationPeerIdsOfMany."""
    read = reader(ctx)

    async def is_member(query: IsConversationMember) -> bool:
        async with read.connect() as conn:
            return await conn.scalar(select(members.c.user_id).where(
                members.c.conversation_id == query.conversation_id, members.c.user_id == query.user_id)) is not None

    async def member_ids(query: ConversationMemberIds) -> list[uuid.UUID]:
        async with read.connect() as conn:
            return list((await conn.scalars(select(members.c.user_id).where(
                members.c.conversation_id == query.conversation_id)
                .order_by(members.c.joined_at, members.c.user_id))).all())

    async def peer_ids(query: ConversationPeerIds) -> set[uuid.UUID]:
        own = members.alias("own")
        mine = select(own.c.conversation_id).where(own.c.user_id == query.user_id)
        if query.max_group_members is not None:
            sized = members.alias("sized")
            small = (select(sized.c.conversation_id).where(sized.c.conversation_id.in_(mine))
                     .group_by(sized.c.conversation_id).having(func.count() <= query.max_group_members))
            mine = mine.where(own.c.conversation_id.in_(small))
        peers = (select(members.c.user_id).distinct()
                 .where(members.c.conversation_id.in_(mine), members.c.user_id != query.user_id))
        if query.among is not None:
            peers = peers.where(members.c.user_id.in_(query.among))
        async with read.connect() as conn:
            return set((await conn.scalars(peers.limit(query.limit))).all())

    async def peer_ids_of_many(query: ConversationPeerIdsOfMany) -> dict[uuid.UUID, set[uuid.UUID]]:
        rows = await ctx.db.fetch(
            "SELECT u.id, p.user_id FROM unnest($1::uuid[]) AS u(id) CROSS JOIN LATERAL ("
            " SELECT DISTINCT m.user_id FROM messaging.members AS m WHERE m.user_id <> u.id AND m.conversation_id IN ("
            "  SELECT own.conversation_id FROM messaging.members AS own WHERE own.user_id = u.id AND ($3::int IS NULL"
            "   OR (SELECT count(*) FROM messaging.members AS s WHERE s.conversation_id = own.conversation_id) <= $3))"
            " LIMIT $2) AS p", query.user_ids, query.limit, query.max_group_members)
        found: dict[uuid.UUID, set[uuid.UUID]] = {u: set() for u in query.user_ids}
        for user_id, peer in rows:
            found[user_id].add(peer)
        return found

    ctx.queries.register(IsConversationMember, is_member)
    ctx.queries.register(ConversationMemberIds, member_ids)
    ctx.queries.register(ConversationPeerIds, peer_ids)
    ctx.queries.register(ConversationPeerIdsOfMany, peer_ids_of_many)
