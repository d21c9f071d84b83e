"""Blocks: the only code that writes the blocks tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from src.common.auth import Principal
from src.common.errors import Conflict, NotFound, ValidationFailed
from src.common.events.blocks import UserBlocked, UserUnblocked
from src.common.guards import insert_or_reread
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.graph import BlockState
from src.common.queries.users import GetProfiles, PublicProfile
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.blocks.models import Block
from src.modules.blocks.schemas import BlockView


class BlocksService:
    """Block, unblock, list, and the block state between two users."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        # Single-statement reads need no transaction: autocommit skips BEGIN/ROLLBACK round trips.
        self._reads = ctx.db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def _profile(self, user_id: uuid.UUID) -> PublicProfile:
        profiles = await self._ctx.queries.ask(GetProfiles(user_ids=[user_id]))
        if user_id not in profiles:
            raise NotFound("No such user", code="user_not_found")
        return profiles[user_id]

    async def block(self, principal: Principal, user_id: uuid.UUID) -> BlockView:
        """Block `user_id` (idempotent); publishes UserBlocked only when the block is new."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(principal.user_id))
        if user_id == principal.user_id:
            raise ValidationFailed("You cannot block yourself", field="user_id", code="cannot_block_self")
        profile = await self._profile(user_id)
        async with self._ctx.uow() as tx:
            async def add() -> object:
                return await tx.session.scalar(
                    insert(Block).values(blocker_id=principal.user_id, blocked_id=user_id)
                    .on_conflict_do_nothing().returning(Block.created_at))

            async def reread() -> object:
                return await tx.session.scalar(select(Block.created_at).where(
                    Block.blocker_id == principal.user_id, Block.blocked_id == user_id))

            outcome = await insert_or_reread(add, reread)
            if outcome is not None and outcome[1]:
                tx.publish(UserBlocked(blocker_id=principal.user_id, blocked_id=user_id))
        if outcome is None:
            raise Conflict("The block changed concurrently, try again", code="concurrent_change")
        created = cast(datetime, outcome[0])
        return BlockView(user=profile, blocked_at=created)

    async def unblock(self, principal: Principal, user_id: uuid.UUID) -> None:
        """Lift the caller's block of `user_id` (idempotent); UserUnblocked only when one existed."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(principal.user_id))
        async with self._ctx.uow() as tx:
            removed = await tx.session.scalar(
                delete(Block).where(Block.blocker_id == principal.user_id, Block.blocked_id == user_id)
                .returning(Block.blocked_id))
            if removed is not None:
                tx.publish(UserUnblocked(blocker_id=principal.user_id, blocked_id=user_id))

    async def list_blocked(self, principal: Principal, limit: int | None, cursor: str | None) -> Page[BlockView]:
        """Whom the caller blocked, newest first, with public profiles."""
        size = clamp_limit(limit)
        query = (select(Block.blocked_id, Block.created_at).where(Block.blocker_id == principal.user_id)
                 .order_by(Block.created_at.desc(), Block.blocked_id.desc()).limit(size + 1))
        if (position := decode_time_cursor(cursor)) is not None:
            query = query.where(tuple_(Block.created_at, Block.blocked_id) < position)
        async with self._ctx.db.session() as session:
            rows = (await session.execute(query)).all()
        profiles = await self._ctx.queries.ask(GetProfiles(user_ids=[r.blocked_id for r in rows]))
        # A deleted account's rows go with `users.user_deleted`; until then it is left out.
        page = page_of(list(rows), size, lambda r: time_position(r.created_at, r.blocked_id))
        return Page(items=[BlockView(user=profiles[r.blocked_id], blocked_at=r.created_at)
                           for r in page.items if r.blocked_id in profiles], next_cursor=page.next_cursor)

    async def block_state(self, user_a: uuid.UUID, user_b: uuid.UUID) -> BlockState:
        """Who blocked whom between two users (one indexed query)."""
        async with self._reads.connect() as conn:
            blockers = set((await conn.scalars(select(Block.blocker_id).where(or_(
                and_(Block.blocker_id == user_a, Block.blocked_id == user_b),
                and_(Block.blocker_id == user_b, Block.blocked_id == user_a))))).all())
        return BlockState(a_blocked_b=user_a in blockers, b_blocked_a=user_b in blockers)

    async def block_states(self, user_id: uuid.UUID, others: list[uuid.UUID]) -> dict[uuid.UUID, BlockState]:
        """Who blocked whom between `user_id` and each of `others` (one indexed query)."""
        if not others:
            return {}
        async with self._reads.connect() as conn:
            rows = (await conn.execute(select(Block.blocker_id, Block.blocked_id).where(or_(
                and_(Block.blocker_id == user_id, Block.blocked_id.in_(others)),
                and_(Block.blocked_id == user_id, Block.blocker_id.in_(others)))))).all()
        mine = {r.blocked_id for r in rows if r.blocker_id == user_id}
        theirs = {r.blocker_id for r in rows if r.blocked_id == user_id}
        return {o: BlockState(a_blocked_b=o in mine, b_blocked_a=o in theirs) for o in others}

    async def blocked_pairs(self, pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """The (a, b) pairs with a block either way (one autocommitted statement for them all)."""
        if not pairs:
            return set()
        rows = await self._ctx.db.fetch(
            "SELECT b.blocker_id, b.blocked_id FROM blocks.blocks b JOIN unnest($1::uuid[], $2::uuid[]) AS p(a, b) "
            "ON (b.blocker_id, b.blocked_id) IN ((p.a, p.b), (p.b, p.a))",
            [a for a, _ in pairs], [b for _, b in pairs])
        found = {(r[0], r[1]) for r in rows}
        return {(a, b) for a, b in pairs if (a, b) in found or (b, a) in found}

    async def blocked_either_way(self, user_id: uuid.UUID) -> set[uuid.UUID]:
        """Everyone this user blocked or was blocked by (one autocommitted statement: feeds ask it)."""
        rows = await self._ctx.db.fetch("SELECT blocked_id FROM blocks.blocks WHERE blocker_id = $1 UNION "
                                        "SELECT blocker_id FROM blocks.blocks WHERE blocked_id = $1", user_id)
        return {row[0] for row in rows}

    async def blocked_either_way_of_many(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
        """`blocked_either_way` of each of `user_ids` (one statement)."""
        rows = await self._ctx.db.fetch("SELECT blocker_id, blocked_id FROM blocks.blocks "
                                        "WHERE blocker_id = ANY($1::uuid[]) OR blocked_id = ANY($1::uuid[])", user_ids)
        found: dict[uuid.UUID, set[uuid.UUID]] = {u: set() for u in user_ids}
        for blocker, blocked in rows:
            if blocker in found:
                found[blocker].add(blocked)
            if blocked in found:
                found[blocked].add(blocker)
        return found

    async def forget_user(self, tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """Remove every block by or of a deleted user (a replay deletes nothing more)."""
        await tx.session.execute(delete(Block).where(or_(Block.blocker_id == user_id,
                                                         Block.blocked_id == user_id)))
