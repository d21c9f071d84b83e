"""Reading, editing, deleting and reacting to messages (sending lives in `sending.py`)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from src.common.errors import Conflict, Forbidden, ValidationFailed
from src.common.events.messaging import MessageDeleted
from src.common.pagination import clamp_limit, decode_cursor, encode_cursor
from src.infra.context import AppContext
from src.modules.messaging import changes
from src.modules.messaging.access import (
    ensure_can_message,
    ensure_writable,
    message_not_found,
    reader,
    require_member,
    require_message,
)
from src.modules.messaging.changes import Fanout, Pending
from src.modules.messaging.media import with_media
from src.modules.messaging.models import hidden_messages, members, messages, reactions
from src.modules.messaging.schemas import (
    MessageDeletedEvent,
    MessagePage,
    MessageView,
    ReactionEvent,
    ReactionsView,
)
from src.modules.messaging.text import check_body, check_emoji
from src.modules.messaging.views import MESSAGE_COLUMNS, load_reactions, message_views, not_hidden, peer_of


def _author_only(row: Any, me: uuid.UUID) -> None:
    if row.sender_id != me:
        raise Forbidden("Only the author can do this", code="not_author")


def _not_deleted(row: Any) -> None:
    if row.deleted_at is not None:
        raise Conflict("The message was deleted", code="message_deleted")


async def _member_ids(conn: Any, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    return list((await conn.scalars(select(members.c.user_id)
                                    .where(members.c.conversation_id == conversation_id))).all())


class MessageService:
    """Message history and changes to existing messages; every change is logged for `/sync`."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout
        self._read = reader(ctx)

    async def history(self, me: uuid.UUID, conversation_id: uuid.UUID, *, before_seq: int | None,
                      after_seq: int | None, limit: int | None, cursor: str | None) -> MessagePage:
        """Messages in seq order: the newest page by default, older with before_seq, newer with after_seq."""
        size = clamp_limit(limit)
        position = decode_cursor(cursor)
        if position is not None:
            before_seq, after_seq = _seq_from_cursor(position)
        query = select(*MESSAGE_COLUMNS).where(messages.c.conversation_id == conversation_id, not_hidden(me))
        if before_seq is not None:
            query = query.where(messages.c.seq < before_seq)
        if after_seq is not None:
            query = query.where(messages.c.seq > after_seq)
        forward = after_seq is not None and before_seq is None
        query = query.order_by(messages.c.seq.asc() if forward else messages.c.seq.desc()).limit(size + 1)
        async with self._read.connect() as conn:
            member = await require_member(conn, conversation_id, me)
            rows = (await conn.execute(query.where(messages.c.seq > member.joined_seq))).all()  # from their join
            has_more = len(rows) > size
            rows = rows[:size] if forward else list(reversed(rows[:size]))
            items = await message_views(conn, rows, me)
        items = await with_media(self._ctx, items)
        next_cursor = None
        if has_more and items:
            next_cursor = encode_cursor({"a": items[-1].seq} if forward else {"b": items[0].seq})
        return MessagePage(items=items, next_cursor=next_cursor, has_more=has_more)

    async def edit(self, me: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID, body: str,
                   sid: str | None = None) -> MessageView:
        """Change the body of one's own message (marks `edited_at`)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            conversation = await require_member(conn, conversation_id, me)
            row = await require_message(conn, conversation_id, message_id, me, lock="update")
            _author_only(row, me)
            _not_deleted(row)
            ensure_writable(conversation)
            check_body(body, has_media=bool(row.media_ids))
            row = (await conn.execute(update(messages).where(messages.c.id == message_id)
                                      .values(body=body, edited_at=func.now()).returning(*MESSAGE_COLUMNS))).one()
            view = (await with_media(self._ctx, await message_views(conn, [row], me)))[0]
            await changes.record(conn, pending, await _member_ids(conn, conversation_id), "message:updated",
                                 conversation_id, msgspec.structs.replace(view, my_reactions=[]), skip_sid=sid)
        return view

    async def delete(self, me: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID,
                     scope: Literal["me", "everyone"], sid: str | None = None) -> None:
        """Delete for everyone (author only: a tombstone keeps the seq) or hide for oneself."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            await require_member(conn, conversation_id, me)
            if scope == "me":
                await self._hide(conn, pending, me, conversation_id, message_id, sid)
            else:
                media_ids = await self._tombstone(conn, pending, me, conversation_id, message_id, sid)
                if media_ids is not None:
                    tx.publish(MessageDeleted(message_id=message_id, conversation_id=conversation_id, sender_id=me,
                                              media_ids=media_ids))

    async def _hide(self, conn: Any, pending: Pending, me: uuid.UUID, conversation_id: uuid.UUID,
                    message_id: uuid.UUID, sid: str | None) -> None:
        row = (await conn.execute(select(messages.c.seq).where(
            messages.c.id == message_id, messages.c.conversation_id == conversation_id))).first()
        if row is None:
            raise message_not_found()
        hidden = await conn.scalar(pg_insert(hidden_messages).values(
            message_id=message_id, user_id=me, conversation_id=conversation_id)
            .on_conflict_do_nothing().returning(hidden_messages.c.message_id))
        if hidden is not None:
            await changes.record(conn, pending, [me], "message:deleted", conversation_id, MessageDeletedEvent(
                conversation_id=conversation_id, message_id=message_id, seq=row.seq, scope="me"), skip_sid=sid)

    async def _tombstone(self, conn: Any, pending: Pending, me: uuid.UUID, conversation_id: uuid.UUID,
                         message_id: uuid.UUID, sid: str | None) -> list[uuid.UUID] | None:
        """Make the message a tombstone; its media ids (None when it already was one)."""
        row = await require_message(conn, conversation_id, message_id, me, lock="update")
        _author_only(row, me)
        if row.deleted_at is not None:
            return None  # already a tombstone: nothing changes, nothing is announced again
        await conn.execute(update(messages).where(messages.c.id == message_id).values(
            body=None, media_ids=[], reply_to=None, deleted_at=func.now()))
        await conn.execute(delete(reactions).where(reactions.c.message_id == message_id))
        await changes.record(conn, pending, await _member_ids(conn, conversation_id), "message:deleted",
                             conversation_id, MessageDeletedEvent(conversation_id=conversation_id,
                                                                  message_id=message_id, seq=row.seq,
                                                                  scope="everyone"), skip_sid=sid)
        return list(row.media_ids or [])

    async def react(self, me: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID, emoji: str,
                    *, add: bool, sid: str | None = None) -> ReactionsView:
        """Add (PUT) or remove (DELETE) the caller's reaction `emoji`; one per emoji per user."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        check_emoji(emoji)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            conversation = await require_member(conn, conversation_id, me)
            row = await require_message(conn, conversation_id, message_id, me, lock="key_share")
            if add:
                _not_deleted(row)
                ensure_writable(conversation)
                if conversation.kind == "direct":
                    await ensure_can_message(self._ctx, me, peer_of(conversation.direct_key, me))
                changed = await conn.scalar(pg_insert(reactions).values(message_id=message_id, user_id=me, emoji=emoji)
                                            .on_conflict_do_nothing().returning(reactions.c.emoji))
            else:
                changed = await conn.scalar(delete(reactions).where(
                    reactions.c.message_id == message_id, reactions.c.user_id == me, reactions.c.emoji == emoji)
                    .returning(reactions.c.emoji))
            counts, mine = (await load_reactions(conn, [message_id], me)).get(message_id, ({}, []))
            if changed is not None:
                event = ReactionEvent(conversation_id=conversation_id, message_id=message_id, seq=row.seq,
                                      user_id=me, emoji=emoji, action="added" if add else "removed",
                                      reactions=dict(counts))
                await changes.record(conn, pending, await _member_ids(conn, conversation_id), "message:reaction",
                                     conversation_id, event, skip_sid=sid)
        return ReactionsView(conversation_id=conversation_id, message_id=message_id, reactions=dict(counts),
                             my_reactions=list(mine))


def _seq_from_cursor(position: dict[str, Any]) -> tuple[int | None, int | None]:
    before, after = position.get("b"), position.get("a")
    if isinstance(before, int) and after is None:
        return before, None
    if isinstance(after, int) and before is None:
        return None, after
    raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor")
