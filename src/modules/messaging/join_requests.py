"""Join requests to groups whose `join_policy` is `request`: one pending request per user and group.

A group with `invite_only` is invisible to non-members (404). A blocked pair never meets
through a request: a user blocked by (or blocking) any member cannot request (404, as if the
group did not exist) and is not admitted on accept (403 `blocked`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from src.common.errors import Conflict, Forbidden, NotFound
from src.common.ids import new_id
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.graph import BlockedEitherWay
from src.infra.context import AppContext
from src.modules.messaging.access import reader
from src.modules.messaging.changes import Fanout
from src.modules.messaging.group_members import admit
from src.modules.messaging.group_schemas import AddedMembers, JoinRequestView
from src.modules.messaging.groups import (
    group_not_found,
    hit_write_limit,
    lock_group,
    member_ids,
    require_rank,
    role_in_group,
)
from src.modules.messaging.models import conversations, join_requests

REQUEST_COLUMNS = (join_requests.c.id, join_requests.c.conversation_id, join_requests.c.user_id,
                   join_requests.c.created_at)


def request_not_found() -> NotFound:
    return NotFound("No such join request", code="join_request_not_found")


def _view(row: Any) -> JoinRequestView:
    return JoinRequestView(id=row.id, group_id=row.conversation_id, user_id=row.user_id, created_at=row.created_at)


class JoinRequestService:
    """Ask to join; admins list, accept and decline."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout
        self._read = reader(ctx)

    async def _blocked_with_members(self, user_id: uuid.UUID, members_now: list[uuid.UUID]) -> bool:
        blocked = await self._ctx.queries.ask(BlockedEitherWay(user_id=user_id))
        return not blocked.isdisjoint(members_now)

    async def request(self, me: uuid.UUID, group_id: uuid.UUID) -> tuple[JoinRequestView, bool]:
        """Ask to join a `request` group: (the pending request, whether it is new)."""
        await hit_write_limit(self._ctx, me)
        async with self._read.connect() as conn:
            policy = await conn.scalar(select(conversations.c.join_policy).where(
                conversations.c.id == group_id, conversations.c.kind == "group"))
            current = await member_ids(conn, group_id)
        if me in current:
            raise Conflict("You are already a member of this group", code="already_member")
        if policy != "request" or await self._blocked_with_members(me, current):
            raise group_not_found()
        async with self._ctx.db.engine.begin() as conn:
            row = (await conn.execute(pg_insert(join_requests).values(id=new_id(), conversation_id=group_id,
                                                                       user_id=me)
                                      .on_conflict_do_nothing().returning(*REQUEST_COLUMNS))).first()
            created = row is not None
            if row is None:
                row = (await conn.execute(select(*REQUEST_COLUMNS).where(
                    join_requests.c.conversation_id == group_id, join_requests.c.user_id == me))).first()
        if row is None:  # the group went away meanwhile (cascade)
            raise group_not_found()
        return _view(row), created

    async def page(self, me: uuid.UUID, group_id: uuid.UUID, limit: int | None,
                   cursor: str | None) -> Page[JoinRequestView]:
        """Pending requests, oldest first (admins)."""
        size = clamp_limit(limit)
        after = decode_time_cursor(cursor)
        query = (select(*REQUEST_COLUMNS).where(join_requests.c.conversation_id == group_id)
                 .order_by(join_requests.c.created_at, join_requests.c.id).limit(size + 1))
        if after is not None:
            query = query.where(tuple_(join_requests.c.created_at, join_requests.c.id) > after)
        async with self._read.connect() as conn:
            require_rank(await role_in_group(conn, group_id, me), "admin")
            rows = (await conn.execute(query)).all()
        return page_of([_view(r) for r in rows], size, lambda r: time_position(r.created_at, r.id))

    async def accept(self, me: uuid.UUID, group_id: uuid.UUID, request_id: uuid.UUID) -> AddedMembers:
        """Admit the requester (admins); 403 `blocked` when they and a member blocked each other."""
        await hit_write_limit(self._ctx, me)
        async with self._read.connect() as conn:
            requester = await conn.scalar(select(join_requests.c.user_id).where(
                join_requests.c.id == request_id, join_requests.c.conversation_id == group_id))
        blocked = await self._ctx.queries.ask(BlockedEitherWay(user_id=requester)) if requester else set()
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            group, role = await lock_group(conn, group_id, me)
            require_rank(role, "admin")
            user_id = await conn.scalar(select(join_requests.c.user_id).where(
                join_requests.c.id == request_id, join_requests.c.conversation_id == group_id).with_for_update())
            if user_id is None:
                raise request_not_found()
            if not blocked.isdisjoint(await member_ids(conn, group_id)):
                raise Forbidden("The requester and a member of the group blocked each other", code="blocked")
            added = await admit(tx, conn, pending, group, [user_id], me, via="join_request",
                                limit=self._ctx.settings.group_max_members)
        return AddedMembers(group_id=group_id, added=added)

    async def decline(self, me: uuid.UUID, group_id: uuid.UUID, request_id: uuid.UUID) -> None:
        """Drop a pending request (admins)."""
        await hit_write_limit(self._ctx, me)
        async with self._ctx.uow() as tx:
            conn = await tx.session.connection()
            _, role = await lock_group(conn, group_id, me)
            require_rank(role, "admin")
            gone = await conn.scalar(delete(join_requests).where(
                join_requests.c.id == request_id, join_requests.c.conversation_id == group_id)
                .returning(join_requests.c.id))
            if gone is None:
                raise request_not_found()
