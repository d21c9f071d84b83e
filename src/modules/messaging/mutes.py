"""Per-conversation notification mute (`PATCH /conversations/{id} {muted_until}`) and the answers
notifications asks about a conversation: who muted it (GetConversationMutes) how far each
member read (GetReadPositions) and message texts for previews (GetMessageBodies).

Table `messaging.mutes` (migration 0013): one row per (conversation, user) while a mute was set;
`muted_until` null or in the past means not muted.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from litestar import Controller, patch
from sqlalchemy import Column, DateTime, Table, and_, select, text, tuple_
from sqlalchemy.dialects.postgresql import UUID

from src.common.auth import Principal
from src.common.queries.messaging import GetConversationMutes, GetMessageBodies, GetReadPositions, GetReadStates
from src.infra.context import AppContext
from src.infra.db import Base
from src.modules.messaging.access import conversation_not_found, reader
from src.modules.messaging.models import SCHEMA, members, messages

mutes = Table(
    "mutes", Base.metadata,
    Column("conversation_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("muted_until", DateTime(timezone=True)),
    schema=SCHEMA,
)

SET_MUTE_SQL = text("""
INSERT INTO messaging.mutes (conversation_id, user_id, muted_until)
SELECT m.conversation_id, m.user_id, CAST(:until AS timestamptz) FROM messaging.members m
WHERE m.conversation_id = :cid AND m.user_id = :me
ON CONFLICT (conversation_id, user_id) DO UPDATE SET muted_until = EXCLUDED.muted_until
RETURNING muted_until
""")


class PatchConversation(msgspec.Struct, forbid_unknown_fields=True):
    """The caller's own settings of a conversation: `muted_until` (a time, or null to unmute)."""

    muted_until: datetime | None


class ConversationSettings(msgspec.Struct):
    conversation_id: uuid.UUID
    muted_until: datetime | None


class MuteService:
    """Writes the mutes table; answers the two notification queries."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def set_mute(self, me: uuid.UUID, conversation_id: uuid.UUID,
                       until: datetime | None) -> ConversationSettings:
        """Mute (or unmute) a conversation for its member `me`; 404 to non-members."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        async with self._ctx.db.engine.begin() as conn:
            row = (await conn.execute(SET_MUTE_SQL, {"cid": conversation_id, "me": me, "until": until})).first()
        if row is None:
            raise conversation_not_found()
        return ConversationSettings(conversation_id=conversation_id, muted_until=row.muted_until)

    async def muted(self, query: GetConversationMutes) -> set[uuid.UUID]:
        async with reader(self._ctx).connect() as conn:
            rows = await conn.execute(select(mutes.c.user_id).where(
                mutes.c.conversation_id == query.conversation_id, mutes.c.user_id.in_(query.user_ids),
                mutes.c.muted_until > text("now()")))
            return {r.user_id for r in rows}

    async def read_positions(self, query: GetReadPositions) -> dict[uuid.UUID, int]:
        async with reader(self._ctx).connect() as conn:
            rows = await conn.execute(select(members.c.user_id, members.c.last_read_seq).where(
                members.c.conversation_id == query.conversation_id, members.c.user_id.in_(query.user_ids)))
            return {r.user_id: int(r.last_read_seq) for r in rows}

    async def read_states(self, query: GetReadStates) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, bool]]:
        if not query.pairs:
            return {}
        muted = mutes.c.muted_until.is_not(None) & (mutes.c.muted_until > text("now()"))
        async with reader(self._ctx).connect() as conn:
            rows = await conn.execute(
                select(members.c.conversation_id, members.c.user_id, members.c.last_read_seq, muted.label("muted"))
                .outerjoin(mutes, and_(mutes.c.conversation_id == members.c.conversation_id,
                                       mutes.c.user_id == members.c.user_id))
                .where(tuple_(members.c.conversation_id, members.c.user_id).in_(query.pairs)))
            return {(r.conversation_id, r.user_id): (int(r.last_read_seq), bool(r.muted)) for r in rows}

    async def bodies(self, query: GetMessageBodies) -> dict[uuid.UUID, str | None]:
        async with reader(self._ctx).connect() as conn:
            rows = await conn.execute(select(messages.c.id, messages.c.body, messages.c.deleted_at)
                                      .where(messages.c.id.in_(query.message_ids)))
            return {r.id: None if r.deleted_at else r.body for r in rows}

    def register(self) -> None:
        """Answer GetConversationMutes, GetReadPositions and GetMessageBodies."""
        self._ctx.queries.register(GetConversationMutes, self.muted)
        self._ctx.queries.register(GetReadPositions, self.read_positions)
        self._ctx.queries.register(GetMessageBodies, self.bodies)
        self._ctx.queries.register(GetReadStates, self.read_states)


class MuteController(Controller):
    path = "/conversations"
    tags = ["messaging"]

    @patch("/{conversation_id:uuid}")
    async def patch_conversation(self, conversation_id: uuid.UUID, data: PatchConversation, principal: Principal,
                                 mute_service: MuteService) -> ConversationSettings:
        """The caller's own notification mute for this conversation (`muted_until`, null to unmute)."""
        return await mute_service.set_mute(principal.user_id, conversation_id, data.muted_until)
