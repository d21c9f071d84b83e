"""Typing indicators: relayed to the other members, kept in Redis for a few seconds, never in PostgreSQL."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import text

from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS
from src.modules.messaging.access import conversation_not_found, ensure_can_message, ensure_writable, reader
from src.modules.messaging.schemas import TypingAck, TypingEvent
from src.modules.messaging.views import peer_of

log = structlog.get_logger("chatty.messaging")
TYPING_TTL = 6  # seconds: clients repeat `typing:start` while the user keeps typing


TYPING_SQL = text("""
SELECT c.kind, c.direct_key, c.read_only,
       ARRAY(SELECT m.user_id FROM messaging.members m WHERE m.conversation_id = c.id) AS member_ids
FROM messaging.conversations c WHERE c.id = :id
""")


def typing_key(conversation_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"typing:{conversation_id}:{user_id}"


class TypingService:
    """`typing:start` / `typing:stop` from a member's socket."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._read = reader(ctx)

    async def set_typing(self, me: uuid.UUID, conversation_id: uuid.UUID, typing: bool,
                         sid: str | None = None) -> TypingAck:
        """Record (or clear) the caller's typing state and tell the other members' sockets."""
        async with self._read.connect() as conn:
            conversation = (await conn.execute(TYPING_SQL, {"id": conversation_id})).first()
        if conversation is None or me not in conversation.member_ids:
            raise conversation_not_found()
        member_ids = conversation.member_ids
        if typing:
            ensure_writable(conversation)
            if conversation.kind == "direct":
                await ensure_can_message(self._ctx, me, peer_of(conversation.direct_key, me))
        expires_in = TYPING_TTL if typing else 0
        try:
            key = typing_key(conversation_id, me)
            await (self._ctx.redis.set(key, "1", ex=TYPING_TTL) if typing else self._ctx.redis.delete(key))
        except REDIS_ERRORS as exc:  # the relay below is what clients see; the key is a convenience
            log.warning("messaging.typing_state_failed", error=repr(exc))
        others = [u for u in member_ids if u != me]
        await self._ctx.realtime.emit_to_users(
            "typing", TypingEvent(conversation_id=conversation_id, user_id=me, typing=typing,
                                  expires_in=expires_in), others, skip_sid=sid)
        return TypingAck(conversation_id=conversation_id, typing=typing, expires_in=expires_in)
