"""Follow edges: the only code that writes the follows tables."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, delete, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import aliased

from src.common.clock import utcnow
from src.common.errors import Conflict, NotFound, ValidationFailed
from src.common.events.follows import FollowCreated, FollowDeleted, UserFollowsRemoved
from src.common.guards import ensure_not_blocked, insert_or_reread
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.graph import GetBlockStates
from src.common.queries.privacy import CanViewProfile
from src.common.queries.users import GetProfiles, PublicProfile
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.follows.models import Follow
from src.modules.follows.schemas import FollowItem, FollowView


class FollowsService:
    """Follow, unfollow, list followers and following; clean up on blocks and deletions."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def _profiles(self, user_ids: list[uuid.UUID],
                        viewer: uuid.UUID | None = None) -> dict[uuid.UUID, PublicProfile]:
        return await self._ctx.queries.ask(GetProfiles(user_ids=user_ids, viewer_id=viewer))

    async def _ensure_user(self, user_id: uuid.UUID) -> None:
        if user_id not in await self._profiles([user_id]):
            raise NotFound("No such user", code="user_not_found")

    async def follow(self, actor: uuid.UUID, target: uuid.UUID) -> FollowView:
        """Follow `target`; following again keeps the one edge. FollowCreated fires once per new edge."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        if actor == target:
            raise ValidationFailed("You cannot follow yourself", field="user_id", code="cannot_follow_self")
        await self._ensure_user(target)
        await ensure_not_blocked(self._ctx.queries, actor, target)
        now = utcnow()
        async with self._ctx.uow() as tx:
            async def add() -> object:
                return await tx.session.scalar(
                    insert(Follow).values(follower_id=actor, followee_id=target, created_at=now)
                    .on_conflict_do_nothing(index_elements=[Follow.follower_id, Follow.followee_id])
                    .returning(Follow.created_at))

            async def reread() -> object:
                return await tx.session.scalar(select(Follow.created_at).where(
                    Follow.follower_id == actor, Follow.followee_id == target))

            outcome = await insert_or_reread(add, reread)
            if outcome is not None and outcome[1]:
                tx.publish(FollowCreated(follower_id=actor, followee_id=target, occurred_at=now))
        if outcome is None:
            raise Conflict("The follow collided with an unfollow; try again", code="concurrent_update")
        return FollowView(follower_id=actor, followee_id=target, created_at=cast(datetime, outcome[0]))

    async def unfollow(self, actor: uuid.UUID, target: uuid.UUID) -> None:
        """Stop following `target` (nothing happens when not following)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        if actor == target:
            raise ValidationFailed("You cannot follow yourself", field="user_id", code="cannot_follow_self")
        async with self._ctx.uow() as tx:
            removed = (await tx.session.execute(
                delete(Follow).where(Follow.follower_id == actor, Follow.followee_id == target)
                .returning(Follow.follower_id))).first()
            if removed is not None:
                tx.publish(FollowDeleted(follower_id=actor, followee_id=target, reason="unfollow"))

    async def followers(self, viewer: uuid.UUID, user_id: uuid.UUID, limit: int | None,
                        cursor: str | None) -> Page[FollowItem]:
        """Who follows `user_id`, newest first."""
        return await self._list(viewer, user_id, limit, cursor, followers=True)

    async def following(self, viewer: uuid.UUID, user_id: uuid.UUID, limit: int | None,
                        cursor: str | None) -> Page[FollowItem]:
        """Whom `user_id` follows, newest first."""
        return await self._list(viewer, user_id, limit, cursor, followers=False)

    async def _list(self, viewer: uuid.UUID, user_id: uuid.UUID, limit: int | None, cursor: str | None,
                    *, followers: bool) -> Page[FollowItem]:
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        if viewer != user_id:
            await self._ensure_user(user_id)
            # Whoever may not see the profile (a block either way, privacy) may not see its lists.
            if not (await self._ctx.queries.ask(CanViewProfile(actor_id=viewer, target_id=user_id))).allowed:
                raise NotFound("No such user", code="user_not_found")
        owner, other = ((Follow.followee_id, Follow.follower_id) if followers
                        else (Follow.follower_id, Follow.followee_id))
        query = (select(other.label("user_id"), Follow.created_at).where(owner == user_id)
                 .order_by(Follow.created_at.desc(), other.desc()).limit(size + 1))
        if position:
            query = query.where(tuple_(Follow.created_at, other) < position)
        async with self._ctx.db.session() as session:
            rows = (await session.execute(query)).all()
        page = page_of(list(rows), size, lambda r: time_position(r.created_at, r.user_id))
        ids = [r.user_id for r in page.items]
        profiles, blocks = await asyncio.gather(
            self._profiles(ids, viewer), self._ctx.queries.ask(GetBlockStates(user_id=user_id, other_ids=ids)))
        # A block removes the pair's edges after the commit (off the request's path); until then
        # the list leaves them out, so the blocker's next read already reflects the block.
        return Page(items=[FollowItem(user=profiles[r.user_id], followed_at=r.created_at)
                           for r in page.items if r.user_id in profiles and not blocks[r.user_id].any],
                    next_cursor=page.next_cursor)

    async def suggestions(self, user_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
        """Second-hop follows: whom the people I follow follow, most shared first."""
        mine = select(Follow.followee_id).where(Follow.follower_id == user_id)
        second = aliased(Follow)
        query = (select(second.followee_id)
                 .where(second.follower_id.in_(mine), second.followee_id != user_id,
                        second.followee_id.not_in(mine))
                 .group_by(second.followee_id)
                 .order_by(func.count().desc(), second.followee_id).limit(limit))
        async with self._ctx.db.session() as session:
            return list((await session.scalars(query)).all())

    async def following_ids(self, user_id: uuid.UUID, limit: int) -> set[uuid.UUID]:
        """Whom this user follows (capped). One autocommitted statement: every feed read asks this."""
        rows = await self._ctx.db.fetch(
            "SELECT followee_id FROM follows.follows WHERE follower_id = $1 LIMIT $2", user_id, limit)
        return {r[0] for r in rows}

    async def follows_among(self, follower_id: uuid.UUID, followee_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `followee_ids` `follower_id` follows."""
        if not followee_ids:
            return set()
        async with self._ctx.db.session() as session:
            rows = await session.scalars(select(Follow.followee_id).where(
                Follow.follower_id == follower_id, Follow.followee_id.in_(followee_ids)))
            return set(rows.all())

    async def follower_count(self, user_id: uuid.UUID, cap: int) -> int:
        """How many follow `user_id`, counted up to `cap` (an index-only count that stops early)."""
        capped = select(Follow.follower_id).where(Follow.followee_id == user_id).limit(cap).subquery()
        async with self._ctx.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(capped)) or 0)

    async def follower_ids_after(self, user_id: uuid.UUID, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """Followers of `user_id` in id order, after `after` (keyset pages for fan-out)."""
        query = (select(Follow.follower_id).where(Follow.followee_id == user_id)
                 .order_by(Follow.follower_id).limit(limit))
        if after is not None:
            query = query.where(Follow.follower_id > after)
        async with self._ctx.db.session() as session:
            return list((await session.scalars(query)).all())

    async def follow_item(self, follower_id: uuid.UUID, followee_id: uuid.UUID) -> FollowItem | None:
        """The follower's list entry when the edge still exists (for `follow:new`)."""
        async with self._ctx.db.session() as session:
            since = await session.scalar(select(Follow.created_at).where(
                Follow.follower_id == follower_id, Follow.followee_id == followee_id))
        if since is None:
            return None
        profile = (await self._profiles([follower_id])).get(follower_id)
        return FollowItem(user=profile, followed_at=since) if profile else None

    async def remove_between(self, tx: UnitOfWork, a: uuid.UUID, b: uuid.UUID, reason: str) -> None:
        """Remove the follows between `a` and `b` both ways (FollowDeleted per removed edge)."""
        await self._remove(tx, or_(and_(Follow.follower_id == a, Follow.followee_id == b),
                                   and_(Follow.follower_id == b, Follow.followee_id == a)), reason)

    async def remove_user(self, tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """Remove every follow from or to `user_id`: one UserFollowsRemoved for them all, since
        an account may have thousands of edges and one event per edge made deletion slow."""
        removed = (await tx.session.execute(
            delete(Follow).where(or_(Follow.follower_id == user_id, Follow.followee_id == user_id))
            .returning(Follow.follower_id, Follow.followee_id))).all()
        if removed:
            tx.publish(UserFollowsRemoved(
                user_id=user_id,
                follower_ids=[r.follower_id for r in removed if r.followee_id == user_id],
                followee_ids=[r.followee_id for r in removed if r.follower_id == user_id]))

    async def _remove(self, tx: UnitOfWork, where: Any, reason: str) -> None:
        removed = (await tx.session.execute(
            delete(Follow).where(where).returning(Follow.follower_id, Follow.followee_id))).all()
        for row in removed:
            tx.publish(FollowDeleted(follower_id=row.follower_id, followee_id=row.followee_id, reason=reason))
