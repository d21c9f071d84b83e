"""What messaging does when an account is deleted.

Policy: the user's messages stay (other members keep their history, bodies included) with
`sender_id` kept and `sender_deleted = true`; their memberships, reactions, hidden marks,
change log and sync head are removed; a direct conversation they were in becomes read-only
(the other member can read it, nobody can write). They leave each group as if they left it
themselves (group_members.depart: ownership passed on, an emptied group deleted, members told).
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from src.common.events.users import UserDeleted
from src.infra.uow import UnitOfWork
from src.modules.messaging import changes
from src.modules.messaging.changes import Fanout
from src.modules.messaging.group_members import depart
from src.modules.messaging.models import changes as change_rows
from src.modules.messaging.models import conversations, hidden_messages, members, messages, reactions, sync_heads
from src.modules.messaging.views import conversation_info

LISTENER = "messaging.forget_user_on_user_deleted"


class AccountCleanup:
    """Answers `UserDeleted` (subscribed with the bus's inbox: once per event, in its transaction)."""

    def __init__(self, fanout: Fanout) -> None:
        self._fanout = fanout

    async def forget_user(self, tx: UnitOfWork, event: UserDeleted) -> None:
        """Anonymise the user's messages, drop their memberships, make their direct conversations read-only."""
        user_id = event.user_id
        pending = self._fanout.after_commit(tx)
        conn = await tx.session.connection()
        # Lock order of every writer: conversations (sorted), then rows inside them, sync heads last.
        locked = (await conn.execute(
            select(conversations.c.id, conversations.c.kind, conversations.c.name, conversations.c.description,
                   conversations.c.join_policy, conversations.c.last_seq).where(conversations.c.id.in_(
                select(members.c.conversation_id).where(members.c.user_id == user_id)))
            .order_by(conversations.c.id).with_for_update())).all()
        for group in (c for c in locked if c.kind == "group"):
            await depart(tx, conn, pending, group, user_id, user_id, "account_deleted")
        conversation_ids = [c.id for c in locked if c.kind == "direct"]
        await conn.execute(delete(members).where(members.c.user_id == user_id))
        await conn.execute(update(conversations).where(conversations.c.id.in_(conversation_ids),
                                                       conversations.c.kind == "direct")
                           .values(read_only=True, updated_at=func.now()))
        await conn.execute(update(messages).where(messages.c.sender_id == user_id,
                                                  messages.c.sender_deleted.is_(False))
                           .values(sender_deleted=True))
        for table in (reactions, hidden_messages, change_rows):
            await conn.execute(delete(table).where(table.c.user_id == user_id))
        infos = [await conversation_info(conn, c) for c in conversation_ids]
        heads = sorted({user_id} | {m.user_id for info in infos for m in info.members})
        await conn.execute(select(sync_heads.c.user_id).where(sync_heads.c.user_id.in_(heads))
                           .order_by(sync_heads.c.user_id).with_for_update())  # all at once, in order
        await conn.execute(delete(sync_heads).where(sync_heads.c.user_id == user_id))
        for info in infos:
            await changes.record(conn, pending, [m.user_id for m in info.members], "conversation:updated",
                                 info.id, info)
