"""Who of a conversation's members a window of its messages may notify (GetMembersToNotify):
one read of the members, their read and join positions and their mutes, for the whole window."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from src.common.queries.messaging import GetMembersToNotify
from src.infra.context import AppContext
from src.modules.messaging.access import reader

MEMBERS_TO_NOTIFY_SQL = text("""
SELECT m.user_id, GREATEST(m.last_read_seq, m.joined_seq) AS seen
FROM messaging.members m
LEFT JOIN messaging.mutes mu ON mu.conversation_id = m.conversation_id AND mu.user_id = m.user_id
WHERE m.conversation_id = :cid AND GREATEST(m.last_read_seq, m.joined_seq) < :seq
  AND (mu.muted_until IS NULL OR mu.muted_until <= now())
""")


def register_members_to_notify(ctx: AppContext) -> None:
    """Answer GetMembersToNotify."""

    async def members_to_notify(query: GetMembersToNotify) -> list[tuple[uuid.UUID, int]]:
        async with reader(ctx).connect() as conn:
            rows = await conn.execute(MEMBERS_TO_NOTIFY_SQL, {"cid": query.conversation_id, "seq": query.seq})
            return [(r.user_id, int(r.seen)) for r in rows]

    ctx.queries.register(GetMembersToNotify, members_to_notify)
