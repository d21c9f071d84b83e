"""Rows to views: messages with their reactions, conversations with members and unread counts."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, exists, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.modules.messaging.models import conversations, hidden_messages, members, messages, reactions
from src.modules.messaging.schemas import (
    ConversationInfo,
    ConversationView,
    MediaRef,
    MemberView,
    MessageView,
)

MESSAGE_COLUMNS = (messages.c.id, messages.c.conversation_id, messages.c.seq, messages.c.sender_id,
                   messages.c.sender_deleted, messages.c.client_msg_id, messages.c.body, messages.c.media_ids,
                   messages.c.reply_to, messages.c.created_at, messages.c.edited_at, messages.c.deleted_at)

CONVERSATION_COLUMNS = (conversations.c.id, conversations.c.kind, conversations.c.direct_key,
                        conversations.c.name, conversations.c.description, conversations.c.owner_id,
                        conversations.c.last_seq, conversations.c.read_only, conversations.c.created_at,
                        conversations.c.activity_at, conversations.c.join_policy)

Reactions = tuple[dict[str, int], list[str]]
NO_REACTIONS: Reactions = ({}, [])


def not_hidden(user_id: uuid.UUID) -> Any:
    """Messages `user_id` did not delete for themselves."""
    return ~exists().where(hidden_messages.c.message_id == messages.c.id, hidden_messages.c.user_id == user_id)


def message_view(row: Any, found: Reactions = NO_REACTIONS) -> MessageView:
    """A message row (MESSAGE_COLUMNS) as its view; a deleted one shows as a tombstone."""
    deleted = row.deleted_at is not None
    return MessageView(
        id=row.id, conversation_id=row.conversation_id, seq=row.seq, sender_id=row.sender_id,
        client_msg_id=row.client_msg_id, body=None if deleted else row.body,
        media=[] if deleted else [MediaRef(id=m) for m in row.media_ids or ()],
        reply_to=None if deleted else row.reply_to,
        reactions={} if deleted else dict(found[0]), my_reactions=[] if deleted else list(found[1]),
        created_at=row.created_at, edited_at=row.edited_at, deleted=deleted, sender_deleted=row.sender_deleted)


async def load_reactions(conn: AsyncConnection, message_ids: Sequence[uuid.UUID],
                         viewer: uuid.UUID | None) -> dict[uuid.UUID, Reactions]:
    """Counts per emoji (first used first) and the viewer's own emojis, per message."""
    if not message_ids:
        return {}
    mine = func.bool_or(reactions.c.user_id == viewer) if viewer else literal_column("false")
    rows = (await conn.execute(
        select(reactions.c.message_id, reactions.c.emoji, func.count().label("n"), mine.label("mine"))
        .where(reactions.c.message_id.in_(list(message_ids)))
        .group_by(reactions.c.message_id, reactions.c.emoji)
        .order_by(reactions.c.message_id, func.min(reactions.c.created_at)))).all()
    found: dict[uuid.UUID, Reactions] = defaultdict(lambda: ({}, []))
    for r in rows:
        counts, own = found[r.message_id]
        counts[r.emoji] = r.n
        if r.mine:
            own.append(r.emoji)
    return found


async def message_views(conn: AsyncConnection, rows: Sequence[Any], viewer: uuid.UUID | None) -> list[MessageView]:
    """Views of message rows with their reactions (one query)."""
    found = await load_reactions(conn, [r.id for r in rows if r.deleted_at is None], viewer)
    return [message_view(r, found.get(r.id, NO_REACTIONS)) for r in rows]


def peer_of(direct_key: str | None, viewer: uuid.UUID) -> uuid.UUID | None:
    """The other user of a direct conversation (kept after their account is deleted)."""
    if not direct_key:
        return None
    a, _, b = direct_key.partition(":")
    return uuid.UUID(b if a == str(viewer) else a)


async def load_members(conn: AsyncConnection, conversation_ids: Sequence[uuid.UUID]
                       ) -> dict[uuid.UUID, list[MemberView]]:
    """Members of each conversation, owner first, then by join time."""
    rows = (await conn.execute(
        select(members.c.conversation_id, members.c.user_id, members.c.role, members.c.public_read_seq,
               members.c.last_delivered_seq)
        .where(members.c.conversation_id.in_(list(conversation_ids)))
        .order_by(members.c.conversation_id, (members.c.role != "owner"), members.c.joined_at,
                  members.c.user_id))).all()
    found: dict[uuid.UUID, list[MemberView]] = defaultdict(list)
    for r in rows:
        found[r.conversation_id].append(MemberView(user_id=r.user_id, role=r.role, read_seq=r.public_read_seq,
                                                   delivered_seq=r.last_delivered_seq))
    return found


def info_view(row: Any, member_views: list[MemberView]) -> ConversationInfo:
    """A conversation row (CONVERSATION_COLUMNS) as every member sees it."""
    return ConversationInfo(
        id=row.id, kind=row.kind, name=row.name, description=row.description, owner_id=row.owner_id,
        members=member_views, last_seq=row.last_seq, read_only=row.read_only, created_at=row.created_at,
        activity_at=row.activity_at, join_policy=row.join_policy if row.kind == "group" else None)


async def conversation_info(conn: AsyncConnection, conversation_id: uuid.UUID) -> ConversationInfo:
    """The shared view of one conversation (for `conversation:updated`)."""
    row = (await conn.execute(select(*CONVERSATION_COLUMNS).where(conversations.c.id == conversation_id))).one()
    return info_view(row, (await load_members(conn, [conversation_id])).get(conversation_id, []))


def unread_count(viewer: Any, last_read_seq: Any) -> Any:
    """Messages from others after `last_read_seq`, not deleted, not hidden for the viewer."""
    return (select(func.count()).select_from(messages)
            .where(messages.c.conversation_id == conversations.c.id, messages.c.seq > last_read_seq,
                   messages.c.sender_id != viewer, messages.c.deleted_at.is_(None), not_hidden(viewer))
            .scalar_subquery())


def my_conversations(viewer: uuid.UUID) -> Any:
    """Conversation rows of the viewer with their own read state and unread count."""
    return (select(*CONVERSATION_COLUMNS, members.c.last_read_seq, members.c.last_delivered_seq,
                   unread_count(viewer, members.c.last_read_seq).label("unread"))
            .select_from(members.join(conversations, conversations.c.id == members.c.conversation_id))
            .where(members.c.user_id == viewer))


LAST_MESSAGES_SQL = text("""
SELECT m.* FROM unnest(CAST(:ids AS uuid[])) AS cid, LATERAL (
    SELECT x.id, x.conversation_id, x.seq, x.sender_id, x.sender_deleted, x.client_msg_id, x.body,
           x.media_ids, x.reply_to, x.created_at, x.edited_at, x.deleted_at
    FROM messaging.messages x
    WHERE x.conversation_id = cid AND x.seq > COALESCE((SELECT j.joined_seq FROM messaging.members j
                                                        WHERE j.conversation_id = cid AND j.user_id = :viewer), 0)
      AND NOT EXISTS (
        SELECT 1 FROM messaging.hidden_messages h WHERE h.message_id = x.id AND h.user_id = :viewer)
    ORDER BY x.seq DESC LIMIT 1) AS m
""")


async def conversation_views(conn: AsyncConnection, rows: Sequence[Any], viewer: uuid.UUID
                             ) -> list[ConversationView]:
    """Views of `my_conversations` rows: members, last visible message, unread count."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    member_views = await load_members(conn, ids)
    last_rows = (await conn.execute(LAST_MESSAGES_SQL, {"ids": ids, "viewer": viewer})).all()
    last = {m.conversation_id: m for m in await message_views(conn, last_rows, viewer)}
    return [ConversationView(**_info_fields(info_view(r, member_views.get(r.id, []))),
                             peer_id=peer_of(r.direct_key, viewer), last_message=last.get(r.id),
                             unread_count=r.unread, last_read_seq=r.last_read_seq,
                             last_delivered_seq=r.last_delivered_seq) for r in rows]


def _info_fields(info: ConversationInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in ConversationInfo.__struct_fields__}


def member_of(conversation_id: Any, user_id: uuid.UUID) -> Any:
    """A condition: `user_id` is a member of `conversation_id`."""
    return exists().where(and_(members.c.conversation_id == conversation_id, members.c.user_id == user_id))
