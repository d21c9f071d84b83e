"""Read and delivery receipts: positions that only move forward, announced once per advance.

Reading up to n implies having received up to n. A read is announced to the other members
only when the reader's `read_receipts` setting is on (privacy's GetPrivacySettings); the
reader's own devices always hear it (their unread counts follow). A delivery is announced to
the senders of the messages it newly covers.

One transaction, two statements: ADVANCE_SQL moves the positions under the member's row lock
and answers what moved, to whom it matters and the new unread count; `record_many` logs the
announcements. Nothing moved: nothing is logged or emitted.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.events.messaging import ConversationRead
from src.common.queries.privacy import GetPrivacySettings
from src.infra.context import AppContext
from src.modules.messaging import changes
from src.modules.messaging.access import conversation_not_found
from src.modules.messaging.changes import Fanout, Pending
from src.modules.messaging.schemas import ReceiptEvent, ReceiptView

ADVANCE_SQL = text("""
WITH cur AS (
    SELECT m.last_read_seq AS old_read, m.last_delivered_seq AS old_delivered,
           LEAST(CAST(:up AS bigint), c.last_seq) AS target
    FROM messaging.members m JOIN messaging.conversations c ON c.id = m.conversation_id
    WHERE m.conversation_id = :cid AND m.user_id = :me
    FOR UPDATE OF m
), upd AS (
    UPDATE messaging.members m SET
        last_read_seq = CASE WHEN :read THEN GREATEST(m.last_read_seq, cur.target) ELSE m.last_read_seq END,
        public_read_seq = CASE WHEN :read AND :public THEN GREATEST(m.last_read_seq, cur.target)
                               ELSE m.public_read_seq END,
        last_delivered_seq = GREATEST(m.last_delivered_seq, cur.target)
    FROM cur
    WHERE m.conversation_id = :cid AND m.user_id = :me
      AND (cur.target > m.last_delivered_seq OR (:read AND cur.target > m.last_read_seq))
    RETURNING m.last_read_seq, m.last_delivered_seq
)
SELECT cur.old_read, cur.old_delivered,
       COALESCE(upd.last_read_seq, cur.old_read) AS read_seq,
       COALESCE(upd.last_delivered_seq, cur.old_delivered) AS delivered_seq,
       ARRAY(SELECT DISTINCT x.sender_id FROM messaging.messages x
             WHERE x.conversation_id = :cid AND x.seq > cur.old_delivered AND x.seq <= upd.last_delivered_seq
               AND x.sender_id <> :me AND EXISTS (
                   SELECT 1 FROM messaging.members o WHERE o.conversation_id = :cid AND o.user_id = x.sender_id)
             ) AS senders,
       ARRAY(SELECT o.user_id FROM messaging.members o WHERE o.conversation_id = :cid) AS member_ids,
       (SELECT count(*) FROM messaging.messages x
        WHERE x.conversation_id = :cid AND x.seq > COALESCE(upd.last_read_seq, cur.old_read)
          AND x.sender_id <> :me AND x.deleted_at IS NULL AND NOT EXISTS (
              SELECT 1 FROM messaging.hidden_messages h WHERE h.message_id = x.id AND h.user_id = :me)
       ) AS unread
FROM cur LEFT JOIN upd ON true
""")


class ReceiptService:
    """Advances `last_read_seq` / `last_delivered_seq` of a member."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout

    async def mark_read(self, me: uuid.UUID, conversation_id: uuid.UUID, up_to_seq: int,
                        sid: str | None = None) -> ReceiptView:
        """The caller read up to `up_to_seq` (capped at the last message; never backwards)."""
        await self._ctx.limiter.hit(self._ctx.settings.send_limit_per_user, "receipt", str(me))
        public = (await self._ctx.queries.ask(GetPrivacySettings(user_id=me))).read_receipts
        return await self._advance(me, conversation_id, up_to_seq, read=True, public=public, sid=sid)

    async def mark_delivered(self, me: uuid.UUID, conversation_id: uuid.UUID, up_to_seq: int,
                             sid: str | None = None) -> ReceiptView:
        """A device of the caller received up to `up_to_seq` (capped; never backwards)."""
        await self._ctx.limiter.hit(self._ctx.settings.send_limit_per_user, "receipt", str(me))
        return await self._advance(me, conversation_id, up_to_seq, read=False, public=False, sid=sid)

    async def _advance(self, me: uuid.UUID, conversation_id: uuid.UUID, up_to_seq: int, *, read: bool,
                       public: bool, sid: str | None) -> ReceiptView:
        args = (me, conversation_id, up_to_seq, read, public, sid)
        async with self._ctx.uow() as tx:
            row = await self._apply(await tx.session.connection(), self._fanout.after_commit(tx), *args)
            if read and row.read_seq > row.old_read:
                # A read that moves the position publishes ConversationRead in the same transaction
                # (always: the publisher never asks who listens).
                tx.publish(ConversationRead(conversation_id=conversation_id, user_id=me, up_to_seq=row.read_seq))
        return ReceiptView(conversation_id=conversation_id, last_read_seq=row.read_seq,
                           last_delivered_seq=row.delivered_seq, unread_count=int(row.unread))

    async def _apply(self, conn: AsyncConnection, pending: Pending, me: uuid.UUID, conversation_id: uuid.UUID,
                     up_to_seq: int, read: bool, public: bool, sid: str | None) -> Any:
        row = (await conn.execute(ADVANCE_SQL, {"cid": conversation_id, "me": me, "up": up_to_seq,
                                                "read": read, "public": public})).first()
        if row is None:
            raise conversation_not_found()
        announce: list[tuple[str, ReceiptEvent, list[uuid.UUID]]] = []
        if row.read_seq > row.old_read:
            announce.append(("message:read", ReceiptEvent(conversation_id=conversation_id, user_id=me,
                                                          up_to_seq=row.read_seq),
                             list(row.member_ids) if public else [me]))
        if row.delivered_seq > row.old_delivered:
            announce.append(("message:delivered", ReceiptEvent(conversation_id=conversation_id, user_id=me,
                                                               up_to_seq=row.delivered_seq),
                             list(row.senders)))
        await changes.record_many(conn, pending, conversation_id, announce, skip_sid=sid)
        return row
