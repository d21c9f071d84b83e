"""Read and delivery receipts: positions that only move forward, announced once per advance.

Reading up to n implies having received up to n. A read is announced to the other members
only when the reader's `read_receipts` setting is on (privacy's GetPrivacySettings); the
reader's own devices always hear it (their unread counts follow). A delivery is announced to
the senders of the messages it covers.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update

from src.common.queries.privacy import GetPrivacySettings
from src.infra.context import AppContext
from src.modules.messaging import changes
from src.modules.messaging.access import conversation_not_found
from src.modules.messaging.changes import Fanout, Pending
from src.modules.messaging.models import conversations, members, messages
from src.modules.messaging.schemas import ReceiptEvent, ReceiptView
from src.modules.messaging.views import unread_count


class ReceiptService:
    """Advances `last_read_seq` / `last_delivered_seq` of a member."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout

    async def mark_read(self, me: uuid.UUID, conversation_id: uuid.UUID, up_to_seq: int,
                        sid: str | None = None) -> ReceiptView:
        """The caller read up to `up_to_seq` (capped at the last message; never backwards)."""
        public = (await self._ctx.queries.ask(GetPrivacySettings(user_id=me))).read_receipts
        return await self._advance(me, conversation_id, up_to_seq, read=True, public=public, sid=sid)

    async def mark_delivered(self, me: uuid.UUID, conversation_id: uuid.UUID, up_to_seq: int,
                             sid: str | None = None) -> ReceiptView:
        """A device of the caller received up to `up_to_seq` (capped; never backwards)."""
        return await self._advance(me, conversation_id, up_to_seq, read=False, public=False, sid=sid)

    async def _advance(self, me: uuid.UUID, conversation_id: uuid.UUID, up_to_seq: int, *, read: bool,
                       public: bool, sid: str | None) -> ReceiptView:
        pending = Pending()
        async with self._ctx.uow() as tx:
            conn = await tx.session.connection()
            state = (await conn.execute(
                select(members.c.last_read_seq, members.c.last_delivered_seq, conversations.c.last_seq)
                .select_from(members.join(conversations, conversations.c.id == members.c.conversation_id))
                .where(members.c.conversation_id == conversation_id, members.c.user_id == me)
                .with_for_update(of=members))).first()
            if state is None:
                raise conversation_not_found()
            target = min(up_to_seq, state.last_seq)
            read_seq = max(state.last_read_seq, target) if read else state.last_read_seq
            delivered_seq = max(state.last_delivered_seq, read_seq, target)
            values: dict[str, Any] = {}
            if read_seq > state.last_read_seq:
                values["last_read_seq"] = read_seq
                if public:
                    values["public_read_seq"] = read_seq
            if delivered_seq > state.last_delivered_seq:
                values["last_delivered_seq"] = delivered_seq
            if values:
                await conn.execute(update(members).where(members.c.conversation_id == conversation_id,
                                                         members.c.user_id == me).values(**values))
            if "last_read_seq" in values:
                users = await self._members(conn, conversation_id) if public else [me]
                await changes.record(conn, pending, users, "message:read", conversation_id,
                                     ReceiptEvent(conversation_id=conversation_id, user_id=me, up_to_seq=read_seq),
                                     skip_sid=sid)
            if "last_delivered_seq" in values:
                senders = await self._senders(conn, conversation_id, me, state.last_delivered_seq, delivered_seq)
                await changes.record(conn, pending, senders, "message:delivered", conversation_id,
                                     ReceiptEvent(conversation_id=conversation_id, user_id=me,
                                                  up_to_seq=delivered_seq), skip_sid=sid)
            unread = await conn.scalar(select(unread_count(me, read_seq)).where(conversations.c.id == conversation_id))
        await self._fanout.flush(pending)
        return ReceiptView(conversation_id=conversation_id, last_read_seq=read_seq,
                           last_delivered_seq=delivered_seq, unread_count=int(unread or 0))

    @staticmethod
    async def _members(conn: Any, conversation_id: uuid.UUID) -> list[uuid.UUID]:
        return list((await conn.scalars(select(members.c.user_id)
                                        .where(members.c.conversation_id == conversation_id))).all())

    @staticmethod
    async def _senders(conn: Any, conversation_id: uuid.UUID, me: uuid.UUID, after: int,
                       up_to: int) -> list[uuid.UUID]:
        """Other users who sent messages in (after, up_to] and are still members."""
        return list((await conn.scalars(
            select(messages.c.sender_id).distinct()
            .where(messages.c.conversation_id == conversation_id, messages.c.seq > after,
                   messages.c.seq <= up_to, messages.c.sender_id != me,
                   messages.c.sender_id.in_(select(members.c.user_id)
                                            .where(members.c.conversation_id == conversation_id))))).all())
