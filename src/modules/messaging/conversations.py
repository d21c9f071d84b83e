"""Conversations: the one direct conversation of a pair, minimal groups, listing and reading them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from src.common.errors import Forbidden, NotFound, ValidationFailed
from src.common.ids import new_id
from src.common.pagination import clamp_limit, cursor_time, decode_cursor, encode_cursor
from src.common.queries.privacy import CanMessage, Decision
from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.modules.messaging import changes
from src.modules.messaging.access import conversation_not_found, ensure_can_message, reader
from src.modules.messaging.changes import Fanout
from src.modules.messaging.models import conversations, members
from src.modules.messaging.schemas import MAX_GROUP_MEMBERS, ConversationView
from src.modules.messaging.text import check_text
from src.modules.messaging.views import conversation_info, conversation_views, my_conversations

BLOCK_CHECKS_AT_ONCE = 8


def direct_key(a: uuid.UUID, b: uuid.UUID) -> str:
    """The unique key of the direct conversation of a pair, whatever the order."""
    low, high = sorted((str(a), str(b)))
    return f"{low}:{high}"


class ConversationService:
    """Opens direct conversations, creates groups, lists and reads conversations."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout
        self._read = reader(ctx)

    async def open_direct(self, me: uuid.UUID, user_id: uuid.UUID) -> tuple[ConversationView, bool]:
        """The direct conversation with `user_id`, created on first use; (view, created)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        if user_id == me:
            raise ValidationFailed("you cannot open a conversation with yourself", field="user_id",
                                   code="invalid_user")
        if user_id not in await self._ctx.queries.ask(GetProfiles(user_ids=[user_id])):
            raise NotFound("No such user", code="user_not_found")
        key = direct_key(me, user_id)
        async with self._read.connect() as conn:
            existing = await conn.scalar(select(conversations.c.id).where(conversations.c.direct_key == key))
        if existing is not None:
            return await self.get(me, existing), False
        await ensure_can_message(self._ctx, me, user_id)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            conversation_id = await conn.scalar(
                pg_insert(conversations).values(id=new_id(), kind="direct", direct_key=key, created_by=me)
                .on_conflict_do_nothing(index_elements=[conversations.c.direct_key]).returning(conversations.c.id))
            if conversation_id is not None:
                await conn.execute(insert(members), [{"conversation_id": conversation_id, "user_id": u}
                                                     for u in (me, user_id)])
                info = await conversation_info(conn, conversation_id)
                await changes.record(conn, pending, [me, user_id], "conversation:updated", conversation_id, info)
        if conversation_id is None:  # a concurrent call created it first: that one is the conversation
            async with self._read.connect() as conn:
                existing = await conn.scalar(select(conversations.c.id).where(conversations.c.direct_key == key))
            assert existing is not None, "a direct conversation is never deleted"
            return await self.get(me, existing), False
        return await self.get(me, conversation_id), True

    async def create_group(self, me: uuid.UUID, name: str, description: str | None,
                           member_ids: list[uuid.UUID], *, join_policy: str = "invite_only") -> ConversationView:
        """A group owned by the caller with these members (existing, no block either way, ≤ 256)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        check_text(name, "name")
        if description is not None:
            check_text(description, "description")
        others = sorted({u for u in member_ids if u != me})
        if not others:
            raise ValidationFailed("a group needs at least one other member", field="member_ids",
                                   code="invalid_members")
        if len(others) + 1 > MAX_GROUP_MEMBERS:
            raise ValidationFailed(f"a group has at most {MAX_GROUP_MEMBERS} members", field="member_ids",
                                   code="too_many_members")
        found = await self._ctx.queries.ask(GetProfiles(user_ids=others))
        missing = [str(u) for u in others if u not in found]
        if missing:
            raise ValidationFailed(f"unknown users: {', '.join(missing[:10])}", field="member_ids",
                                   code="unknown_users")
        await self._ensure_can_message_all(me, others)
        conversation_id = new_id()
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            await conn.execute(insert(conversations).values(
                id=conversation_id, kind="group", name=name, description=description, owner_id=me, created_by=me,
                join_policy=join_policy))
            await conn.execute(insert(members), [
                {"conversation_id": conversation_id, "user_id": u, "role": "owner" if u == me else "member"}
                for u in [me, *others]])
            info = await conversation_info(conn, conversation_id)
            await changes.record(conn, pending, [me, *others], "conversation:updated", conversation_id, info)
        return await self.get(me, conversation_id)

    async def _ensure_can_message_all(self, me: uuid.UUID, others: list[uuid.UUID]) -> None:
        """Adding someone to a group needs what a direct message needs (CanMessage: no block either
        way, their `who_can_message` allows me); else a group would bypass that setting."""
        limit = asyncio.Semaphore(BLOCK_CHECKS_AT_ONCE)

        async def decision(other: uuid.UUID) -> Decision:
            async with limit:
                return await self._ctx.queries.ask(CanMessage(actor_id=me, target_id=other))

        denied = [d for d in await asyncio.gather(*(decision(u) for u in others)) if not d.allowed]
        if any(d.reason == "blocked" for d in denied):
            raise Forbidden("A member has blocked you or is blocked by you", code="blocked")
        if denied:
            raise Forbidden("A member does not accept messages from you", code="not_allowed",
                            field="member_ids")

    async def get(self, me: uuid.UUID, conversation_id: uuid.UUID, *, kind: str | None = None) -> ConversationView:
        """One of the caller's conversations (404 when not a member or not of `kind`)."""
        async with self._read.connect() as conn:
            query = my_conversations(me).where(conversations.c.id == conversation_id)
            if kind:
                query = query.where(conversations.c.kind == kind)
            row = (await conn.execute(query)).first()
            if row is None:
                if kind == "group":
                    raise NotFound("No such group", code="group_not_found")
                raise conversation_not_found()
            return (await conversation_views(conn, [row], me))[0]

    async def list_mine(self, me: uuid.UUID, limit: int | None,
                        cursor: str | None) -> tuple[list[ConversationView], str | None]:
        """The caller's conversations, most recent activity first."""
        size = clamp_limit(limit)
        after = _activity_position(decode_cursor(cursor))
        query = my_conversations(me).order_by(conversations.c.activity_at.desc(), conversations.c.id.desc())
        if after is not None:
            query = query.where(tuple_(conversations.c.activity_at, conversations.c.id) < after)
        async with self._read.connect() as conn:
            rows = (await conn.execute(query.limit(size + 1))).all()
            views = await conversation_views(conn, rows[:size], me)
        next_cursor = None
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = encode_cursor({"at": last.activity_at.isoformat(), "id": str(last.id)})
        return views, next_cursor


def _activity_position(position: dict[str, Any] | None) -> tuple[datetime, uuid.UUID] | None:
    if position is None:
        return None
    try:
        return cursor_time(position["at"]), uuid.UUID(str(position["id"]))
    except (KeyError, ValueError):
        raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor") from None

