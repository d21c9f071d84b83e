"""Who may see what: every conversation endpoint answers 404 to non-members."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.common.errors import Forbidden, NotFound
from src.common.queries.privacy import CanMessage
from src.infra.context import AppContext
from src.modules.messaging.models import conversations, members, messages
from src.modules.messaging.views import MESSAGE_COLUMNS, not_hidden


def reader(ctx: AppContext) -> AsyncEngine:
    """Connections for reads: AUTOCOMMIT, so no BEGIN / ROLLBACK round trips around the statements."""
    return ctx.db.engine.execution_options(isolation_level="AUTOCOMMIT")


def conversation_not_found() -> NotFound:
    return NotFound("No such conversation", code="conversation_not_found")


def message_not_found() -> NotFound:
    return NotFound("No such message", code="message_not_found")


async def require_member(conn: AsyncConnection, conversation_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    """The conversation (kind, direct_key, read_only, last_seq) and the member's read state and
    `joined_seq` (they see messages after it); 404 otherwise."""
    row = (await conn.execute(
        select(conversations.c.id, conversations.c.kind, conversations.c.direct_key, conversations.c.read_only,
               conversations.c.last_seq, members.c.last_read_seq, members.c.last_delivered_seq,
               members.c.joined_seq)
        .select_from(conversations.join(members, members.c.conversation_id == conversations.c.id))
        .where(conversations.c.id == conversation_id, members.c.user_id == user_id))).first()
    if row is None:
        raise conversation_not_found()
    return row


async def require_message(conn: AsyncConnection, conversation_id: uuid.UUID, message_id: uuid.UUID,
                          viewer: uuid.UUID, *, lock: str | None = None) -> Any:
    """A message of the conversation that the viewer did not hide and joined before; 404 otherwise.

    `lock`: "update" (edit, delete) or "key_share" (reactions: a concurrent delete waits for us,
    or we see its tombstone).
    """
    joined = (select(members.c.joined_seq)
              .where(members.c.conversation_id == conversation_id, members.c.user_id == viewer).scalar_subquery())
    query = select(*MESSAGE_COLUMNS).where(messages.c.id == message_id, messages.c.seq > joined,
                                           messages.c.conversation_id == conversation_id, not_hidden(viewer))
    if lock == "update":
        query = query.with_for_update()
    elif lock == "key_share":
        query = query.with_for_update(read=True, key_share=True)
    row = (await conn.execute(query)).first()
    if row is None:
        raise message_not_found()
    return row


def ensure_writable(conversation: Any) -> None:
    """403 `read_only` once the other member of a direct conversation deleted their account."""
    if conversation.read_only:
        raise Forbidden("This conversation is read-only", code="read_only")


async def ensure_can_message(ctx: AppContext, actor: uuid.UUID, target: uuid.UUID | None) -> None:
    """Ask privacy; 403 with its reason (`blocked` or `not_allowed`) when denied."""
    if target is None:
        return
    decision = await ctx.queries.ask(CanMessage(actor_id=actor, target_id=target))
    if not decision.allowed:
        reason = decision.reason or "not_allowed"
        detail = "You cannot message this user" if reason == "not_allowed" else "Messaging is blocked"
        raise Forbidden(detail, code=reason)
