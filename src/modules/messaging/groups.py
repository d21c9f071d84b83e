"""Group settings (rename, describe, join policy), group deletion, and the rules every group write shares.

Every change to a group runs in one transaction that first locks the group's conversation row
(`FOR UPDATE`): sends lock the same row to allocate a seq, so a membership change is ordered
with the messages (a member added at seq n sees n+1 onwards; a removed one is in no later send),
and two role changes (two ownership transfers) never interleave: the second sees the first's
result. Lock order, as everywhere in messaging: the conversation row, its members, sync heads.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.errors import Forbidden, NotFound
from src.common.events.groups import GroupDeleted
from src.infra.context import AppContext
from src.modules.messaging import changes
from src.modules.messaging.changes import Fanout, Pending
from src.modules.messaging.group_schemas import GroupUpdatedEvent, RoleChange, UpdateGroup
from src.modules.messaging.models import conversations, members
from src.modules.messaging.text import check_text

RANK = {"member": 0, "admin": 1, "owner": 2}


def group_not_found() -> NotFound:
    return NotFound("No such group", code="group_not_found")


async def hit_write_limit(ctx: AppContext, user_id: uuid.UUID) -> None:
    """Count one write of the user (429 past `WRITE_LIMIT_PER_USER`)."""
    await ctx.limiter.hit(ctx.settings.write_limit_per_user, "write", str(user_id))


async def lock_group(conn: AsyncConnection, group_id: uuid.UUID, me: uuid.UUID) -> tuple[Any, str]:
    """The group row, locked, and the caller's role; 404 when it is no group of theirs."""
    group = (await conn.execute(
        select(conversations.c.id, conversations.c.name, conversations.c.description, conversations.c.join_policy,
               conversations.c.owner_id, conversations.c.last_seq)
        .where(conversations.c.id == group_id, conversations.c.kind == "group").with_for_update())).first()
    if group is None:
        raise group_not_found()
    role = await conn.scalar(select(members.c.role).where(members.c.conversation_id == group_id,
                                                          members.c.user_id == me))
    if role is None:
        raise group_not_found()
    return group, role


async def role_in_group(conn: AsyncConnection, group_id: uuid.UUID, me: uuid.UUID) -> str:
    """The caller's role in the group (no lock); 404 when it is no group of theirs."""
    role = await conn.scalar(select(members.c.role).join(
        conversations, conversations.c.id == members.c.conversation_id).where(
        members.c.conversation_id == group_id, members.c.user_id == me, conversations.c.kind == "group"))
    if role is None:
        raise group_not_found()
    return str(role)


def require_rank(role: str, needed: str) -> None:
    """403 unless `role` is at least `needed` (member < admin < owner)."""
    if RANK[role] < RANK[needed]:
        raise Forbidden(f"Only the group's {needed}s can do this" if needed == "admin" else
                        "Only the group's owner can do this", code=f"not_{needed}")


async def member_ids(conn: AsyncConnection, group_id: uuid.UUID) -> list[uuid.UUID]:
    return list((await conn.scalars(select(members.c.user_id).where(members.c.conversation_id == group_id))).all())


async def updated_event(conn: AsyncConnection, group_id: uuid.UUID, actor: uuid.UUID,
                        roles: list[RoleChange] | None = None) -> GroupUpdatedEvent:
    """`group:updated` as the group is now (read inside the writer's transaction)."""
    row = (await conn.execute(
        select(conversations.c.name, conversations.c.description, conversations.c.join_policy,
               conversations.c.owner_id,
               select(func.count()).where(members.c.conversation_id == group_id).scalar_subquery().label("n"))
        .where(conversations.c.id == group_id))).one()
    return GroupUpdatedEvent(group_id=group_id, name=row.name, description=row.description,
                             join_policy=row.join_policy, owner_id=row.owner_id, member_count=row.n,
                             actor_id=actor, roles=roles or [])


async def delete_group(conn: AsyncConnection, pending: Pending, group: Any, actor: uuid.UUID,
                       former: list[uuid.UUID]) -> GroupDeleted:
    """Remove the group and its history (cascade); tell `former` members; the event to publish."""
    await conn.execute(delete(conversations).where(conversations.c.id == group.id))
    event = GroupUpdatedEvent(group_id=group.id, name=group.name, description=group.description,
                              join_policy=group.join_policy, owner_id=None, member_count=0, actor_id=actor,
                              deleted=True)
    await changes.record(conn, pending, former, "group:updated", group.id, event)
    return GroupDeleted(group_id=group.id, actor_id=actor, member_ids=former)


class GroupService:
    """PATCH and DELETE of a group."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout

    async def update(self, me: uuid.UUID, group_id: uuid.UUID, data: UpdateGroup) -> GroupUpdatedEvent:
        """Change name, description or join policy (admins); members hear `group:updated`."""
        values: dict[str, Any] = {f: v for f in ("name", "description", "join_policy")
                                  if (v := getattr(data, f)) is not msgspec.UNSET}
        for field in ("name", "description"):
            if values.get(field) is not None:
                check_text(values[field], field)
        await hit_write_limit(self._ctx, me)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            group, role = await lock_group(conn, group_id, me)
            require_rank(role, "admin")
            if any(getattr(group, f) != v for f, v in values.items()):
                await conn.execute(update(conversations).where(conversations.c.id == group_id)
                                   .values(**values, updated_at=func.now()))
                event = await updated_event(conn, group_id, me)
                await changes.record(conn, pending, await member_ids(conn, group_id), "group:updated", group_id,
                                     event)
            else:
                event = await updated_event(conn, group_id, me)  # nothing changed: nothing announced
        return event

    async def delete(self, me: uuid.UUID, group_id: uuid.UUID) -> None:
        """Delete the group and its history (owner only); every member hears `group:updated` deleted."""
        await hit_write_limit(self._ctx, me)
        async with self._ctx.uow() as tx:
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            group, role = await lock_group(conn, group_id, me)
            require_rank(role, "owner")
            tx.publish(await delete_group(conn, pending, group, me, await member_ids(conn, group_id)))
