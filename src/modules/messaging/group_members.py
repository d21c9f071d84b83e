"""Group members: listing, adding (admins), removing and leaving, roles and ownership transfers.

Rules: admins add and remove members; only the owner removes admins and changes roles; anyone
leaves. The owner leaving hands the ownership to the longest-standing admin, else the
longest-standing member; the last member leaving deletes the group. An added user must be
someone the adder may message (privacy's CanMessage: their settings, blocks either way), and a
group holds at most `GROUP_MAX_MEMBERS`. A member sees messages after the seq at which they
joined; a removed member keeps nothing on the server side: every read answers 404 and no
later message, change or emit names them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from src.common.events.groups import GroupMemberAdded, GroupMemberRemoved
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.privacy import CanMessage
from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.messaging import changes
from src.modules.messaging.access import reader
from src.modules.messaging.changes import Fanout, Pending
from src.modules.messaging.group_schemas import (
    AddedMembers,
    GroupMemberView,
    MemberAddedEvent,
    MemberRemovedEvent,
    Role,
    RoleChange,
)
from src.modules.messaging.groups import (
    delete_group,
    hit_write_limit,
    lock_group,
    member_ids,
    require_rank,
    role_in_group,
    updated_event,
)
from src.modules.messaging.models import conversations, join_requests, members

PERMISSION_CHECKS_AT_ONCE = 8
MEMBER_COLUMNS = (members.c.user_id, members.c.role, members.c.joined_at)


def member_not_found() -> NotFound:
    return NotFound("No such member", code="member_not_found")


def _view(row: Any) -> GroupMemberView:
    return GroupMemberView(user_id=row.user_id, role=row.role, joined_at=row.joined_at)


async def admit(tx: UnitOfWork, conn: AsyncConnection, pending: Pending, group: Any, user_ids: list[uuid.UUID],
                actor: uuid.UUID, *, via: Literal["added", "join_request"], limit: int) -> list[GroupMemberView]:
    """Add `user_ids` (those not yet members) to the locked `group`; 409 `group_full` past `limit`."""
    present = set((await conn.scalars(select(members.c.user_id).where(
        members.c.conversation_id == group.id, members.c.user_id.in_(user_ids)))).all())
    new = [u for u in dict.fromkeys(user_ids) if u not in present]
    await conn.execute(delete(join_requests).where(join_requests.c.conversation_id == group.id,
                                                   join_requests.c.user_id.in_(user_ids)))  # settled either way
    if not new:
        return []
    count = await conn.scalar(select(func.count()).where(members.c.conversation_id == group.id)) or 0
    if count + len(new) > limit:
        raise Conflict(f"A group holds at most {limit} members ({count} now)", code="group_full",
                       extra={"limit": limit, "member_count": count})
    seq = group.last_seq  # exact: sends wait for our lock on the conversation row
    rows = (await conn.execute(insert(members).returning(*MEMBER_COLUMNS), [
        {"conversation_id": group.id, "user_id": u, "role": "member", "joined_seq": seq, "last_read_seq": seq,
         "last_delivered_seq": seq, "public_read_seq": seq} for u in new])).all()
    added = [_view(r) for r in rows]
    await changes.record(conn, pending, await member_ids(conn, group.id), "group:member_added", group.id,
                         MemberAddedEvent(group_id=group.id, members=added, actor_id=actor, via=via))
    tx.publish(GroupMemberAdded(group_id=group.id, user_ids=new, actor_id=actor, via=via))
    return added


async def depart(tx: UnitOfWork, conn: AsyncConnection, pending: Pending, group: Any, user_id: uuid.UUID,
                 actor: uuid.UUID, reason: Literal["removed", "left", "account_deleted"]) -> None:
    """Take `user_id` out of the locked `group`: pass the ownership on, or delete the group when
    they were its last member; tell the remaining members and the user."""
    role = await conn.scalar(delete(members).where(members.c.conversation_id == group.id,
                                                   members.c.user_id == user_id).returning(members.c.role))
    if role is None:
        return
    remaining = (await conn.execute(select(members.c.user_id, members.c.role)
                                    .where(members.c.conversation_id == group.id)
                                    .order_by(members.c.joined_at, members.c.user_id))).all()
    if not remaining:
        tx.publish(await delete_group(conn, pending, group, actor, [user_id]))
        return
    new_owner = None
    if role == "owner":
        new_owner = next((r.user_id for r in remaining if r.role == "admin"), remaining[0].user_id)
        await conn.execute(update(members).where(members.c.conversation_id == group.id,
                                                 members.c.user_id == new_owner).values(role="owner"))
        await conn.execute(update(conversations).where(conversations.c.id == group.id)
                           .values(owner_id=new_owner, updated_at=func.now()))
    others = [r.user_id for r in remaining]
    announce: list[tuple[str, Any, list[uuid.UUID]]] = [(
        "group:member_removed", MemberRemovedEvent(group_id=group.id, user_id=user_id, actor_id=actor, reason=reason,
                                                   new_owner_id=new_owner), [*others, user_id])]
    if new_owner is not None:
        announce.append(("group:updated", await updated_event(
            conn, group.id, actor, [RoleChange(user_id=new_owner, role="owner")]), others))
    await changes.record_many(conn, pending, group.id, announce)
    tx.publish(GroupMemberRemoved(group_id=group.id, user_id=user_id, actor_id=actor, reason=reason,
                                  new_owner_id=new_owner))


class MemberService:
    """Members of a group and the changes to them."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout
        self._read = reader(ctx)

    async def page(self, me: uuid.UUID, group_id: uuid.UUID, limit: int | None,
                   cursor: str | None) -> Page[GroupMemberView]:
        """Members by join time (oldest first), with roles; 404 for non-members."""
        size = clamp_limit(limit)
        after = decode_time_cursor(cursor)
        query = (select(*MEMBER_COLUMNS).where(members.c.conversation_id == group_id)
                 .order_by(members.c.joined_at, members.c.user_id).limit(size + 1))
        if after is not None:
            query = query.where(tuple_(members.c.joined_at, members.c.user_id) > after)
        async with self._read.connect() as conn:
            await role_in_group(conn, group_id, me)
            rows = (await conn.execute(query)).all()
        return page_of([_view(r) for r in rows], size, lambda m: time_position(m.joined_at, m.user_id))

    async def add(self, me: uuid.UUID, group_id: uuid.UUID, user_ids: list[uuid.UUID]) -> AddedMembers:
        """Add users (admins): each must exist and be someone the caller may message."""
        wanted = [u for u in dict.fromkeys(user_ids) if u != me]
        await hit_write_limit(self._ctx, me)
        async with self._read.connect() as conn:
            role = await role_in_group(conn, group_id, me)
        require_rank(role, "admin")
        await self._check_addable(me, wanted)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            group, role = await lock_group(conn, group_id, me)
            require_rank(role, "admin")
            added = await admit(tx, conn, pending, group, wanted, me, via="added",
                                limit=self._ctx.settings.group_max_members)
        return AddedMembers(group_id=group_id, added=added)

    async def _check_addable(self, me: uuid.UUID, user_ids: list[uuid.UUID]) -> None:
        if not user_ids:
            return
        found = await self._ctx.queries.ask(GetProfiles(user_ids=user_ids))
        missing = [str(u) for u in user_ids if u not in found]
        if missing:
            raise ValidationFailed(f"unknown users: {', '.join(missing[:10])}", field="user_ids",
                                   code="unknown_users")
        limit = asyncio.Semaphore(PERMISSION_CHECKS_AT_ONCE)

        async def decision(user_id: uuid.UUID) -> tuple[uuid.UUID, str | None]:
            async with limit:
                answer = await self._ctx.queries.ask(CanMessage(actor_id=me, target_id=user_id))
            return user_id, None if answer.allowed else (answer.reason or "not_allowed")

        refused = [(u, why) for u, why in await asyncio.gather(*(decision(u) for u in user_ids)) if why]
        if refused:
            user_id, why = refused[0]
            raise Forbidden(f"You cannot add {user_id}: you may not message them", code=why, field="user_ids")

    async def remove(self, me: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Leave (oneself) or remove a member (admins; admins only by the owner; never the owner)."""
        await hit_write_limit(self._ctx, me)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            group, role = await lock_group(conn, group_id, me)
            if user_id != me:
                require_rank(role, "admin")
                target = await self._role_of(conn, group_id, user_id)
                if target == "owner":
                    raise Forbidden("The owner cannot be removed", code="not_owner")
                if target == "admin":
                    require_rank(role, "owner")
            await depart(tx, conn, pending, group, user_id, me, "left" if user_id == me else "removed")

    async def change_role(self, me: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID,
                          new_role: Role) -> GroupMemberView:
        """Promote or demote a member (owner only); `owner` transfers the ownership, atomically."""
        await hit_write_limit(self._ctx, me)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            _, role = await lock_group(conn, group_id, me)
            require_rank(role, "owner")
            target = await self._role_of(conn, group_id, user_id)
            if user_id == me:
                raise ValidationFailed("the owner changes their own role by transferring the ownership",
                                       field="user_id", code="invalid_role")
            roles: list[RoleChange] = []
            if new_role == "owner":
                # The old owner first: the partial unique index allows one owner per group at any time.
                await self._set_role(conn, group_id, me, "admin")
                await self._set_role(conn, group_id, user_id, "owner")
                await conn.execute(update(conversations).where(conversations.c.id == group_id)
                                   .values(owner_id=user_id, updated_at=func.now()))
                roles = [RoleChange(user_id=me, role="admin"), RoleChange(user_id=user_id, role="owner")]
            elif new_role != target:
                await self._set_role(conn, group_id, user_id, new_role)
                roles = [RoleChange(user_id=user_id, role=new_role)]
            if roles:
                await changes.record(conn, pending, await member_ids(conn, group_id), "group:updated", group_id,
                                     await updated_event(conn, group_id, me, roles))
            row = (await conn.execute(select(*MEMBER_COLUMNS).where(members.c.conversation_id == group_id,
                                                                    members.c.user_id == user_id))).one()
        return _view(row)

    @staticmethod
    async def _role_of(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID) -> str:
        role = await conn.scalar(select(members.c.role).where(members.c.conversation_id == group_id,
                                                              members.c.user_id == user_id))
        if role is None:
            raise member_not_found()
        return str(role)

    @staticmethod
    async def _set_role(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
        await conn.execute(update(members).where(members.c.conversation_id == group_id,
                                                 members.c.user_id == user_id).values(role=role))
